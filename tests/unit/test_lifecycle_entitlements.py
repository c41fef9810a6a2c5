"""The GetEntitlements adapter against botocore's Stubber (the real client, no network)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from fulfillment.core.errors import ConfigurationError
from fulfillment.lifecycle.entitlements import MarketplaceEntitlements
from fulfillment.lifecycle.settings import load_lifecycle_settings
from fulfillment.lifecycle.subscriptions import (
    Entitlement,
    EntitlementQuery,
    EntitlementsUnavailableError,
)

PRODUCT = "prod-integration1"
ARN = "arn:aws:license-manager::111122223333:license:l-0123456789abcdef0123456789abcdef"


@pytest.fixture
def client() -> Any:
    return boto3.client("marketplace-entitlement", region_name="us-east-1")


def test_every_page_is_read_and_values_keep_their_type(client: Any) -> None:
    expires = datetime(2027, 11, 26, 8, 59, 58, tzinfo=UTC)
    with Stubber(client) as stub:
        stub.add_response(
            "get_entitlements",
            {
                "Entitlements": [
                    {"ProductCode": PRODUCT, "Dimension": "Seats", "Value": {"IntegerValue": 25}},
                    {"ProductCode": PRODUCT, "Dimension": "Tier", "Value": {"StringValue": "pro"}},
                ],
                "NextToken": "page-2",
            },
            {"ProductCode": PRODUCT, "Filter": {"LICENSE_ARN": [ARN]}},
        )
        stub.add_response(
            "get_entitlements",
            {
                "Entitlements": [
                    {
                        "Dimension": "Storage",
                        "Value": {"DoubleValue": 1.5},
                        "ExpirationDate": expires,
                    },
                    {"Dimension": "Sso", "Value": {"BooleanValue": True}},
                ]
            },
            {"ProductCode": PRODUCT, "Filter": {"LICENSE_ARN": [ARN]}, "NextToken": "page-2"},
        )

        found = MarketplaceEntitlements(client).fetch(EntitlementQuery(PRODUCT, license_arn=ARN))

        stub.assert_no_pending_responses()
    assert found == [
        Entitlement("Seats", 25, "integer", None),
        Entitlement("Tier", "pro", "string", None),
        Entitlement("Storage", 1.5, "double", "2027-11-26T08:59:58.000+00:00"),
        Entitlement("Sso", True, "boolean", None),
    ]


def test_an_empty_answer_is_an_empty_list_even_across_an_empty_page(client: Any) -> None:
    with Stubber(client) as stub:
        stub.add_response("get_entitlements", {"Entitlements": [], "NextToken": "more"})
        stub.add_response("get_entitlements", {"Entitlements": []})

        found = MarketplaceEntitlements(client).fetch(
            EntitlementQuery(PRODUCT, customer_identifier="Ab1Cd2Ef3Gh")
        )

    assert found == []


def test_a_next_token_given_twice_is_an_error_not_an_endless_loop(client: Any) -> None:
    request = {"ProductCode": PRODUCT, "Filter": {"LICENSE_ARN": [ARN]}}
    with Stubber(client) as stub:
        stub.add_response("get_entitlements", {"Entitlements": [], "NextToken": "t1"}, request)
        stub.add_response(
            "get_entitlements",
            {"Entitlements": [], "NextToken": "t2"},
            {**request, "NextToken": "t1"},
        )
        stub.add_response(
            "get_entitlements",
            {"Entitlements": [], "NextToken": "t1"},
            {**request, "NextToken": "t2"},
        )

        with pytest.raises(EntitlementsUnavailableError, match="RepeatedNextToken"):
            MarketplaceEntitlements(client).fetch(EntitlementQuery(PRODUCT, license_arn=ARN))

        stub.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("query", "expected_filter"),
    [
        (EntitlementQuery(PRODUCT, license_arn=ARN), {"LICENSE_ARN": [ARN]}),
        (
            EntitlementQuery(PRODUCT, customer_identifier="Ab1Cd2Ef3Gh"),
            {"CUSTOMER_IDENTIFIER": ["Ab1Cd2Ef3Gh"]},
        ),
        (
            EntitlementQuery(PRODUCT, customer_aws_account_id="111122223333"),
            {"CUSTOMER_AWS_ACCOUNT_ID": ["111122223333"]},
        ),
    ],
)
def test_the_most_specific_filter_is_sent(
    client: Any, query: EntitlementQuery, expected_filter: dict[str, list[str]]
) -> None:
    with Stubber(client) as stub:
        stub.add_response(
            "get_entitlements",
            {"Entitlements": []},
            {"ProductCode": PRODUCT, "Filter": expected_filter},
        )

        MarketplaceEntitlements(client).fetch(query)

        stub.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("code", "status", "reported"),
    [
        ("ThrottlingException", 400, "ThrottlingException"),
        ("InternalServiceErrorException", 500, "InternalServiceErrorException"),
        ("AccessDeniedException", 403, "OtherError"),
    ],
)
def test_failures_become_the_domains_error_with_a_bounded_code(
    client: Any, code: str, status: int, reported: str
) -> None:
    with Stubber(client) as stub:
        stub.add_client_error("get_entitlements", code, http_status_code=status)

        with pytest.raises(EntitlementsUnavailableError) as caught:
            MarketplaceEntitlements(client).fetch(EntitlementQuery(PRODUCT, license_arn=ARN))

    assert caught.value.code == reported


def test_lifecycle_settings_need_the_table_and_products() -> None:
    settings = load_lifecycle_settings(
        {"CUSTOMERS_TABLE_NAME": "customers", "PRODUCT_CODES": "prod-a, prod-b"}
    )

    assert settings.product_codes == frozenset({"prod-a", "prod-b"})
    with pytest.raises(ConfigurationError) as caught:
        load_lifecycle_settings({"CUSTOMERS_TABLE_NAME": "customers"})
    assert caught.value.variable == "PRODUCT_CODES"


def test_entitlements_of_another_license_customer_or_product_are_ignored(
    client: Any, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # The same license in another spelling is the same license; anything else is not ours.
    same = "arn:aws:license-manager:us-east-1:111122223333:l-0123456789abcdef0123456789abcdef"
    other = "arn:aws:license-manager::111122223333:license:l-ffffffffffffffffffffffffffffffff"
    with Stubber(client) as stub:
        stub.add_response(
            "get_entitlements",
            {
                "Entitlements": [
                    {
                        "ProductCode": PRODUCT,
                        "Dimension": "Seats",
                        "LicenseArn": ARN,
                        "Value": {"IntegerValue": 25},
                    },
                    {
                        "ProductCode": PRODUCT,
                        "Dimension": "Admins",
                        "LicenseArn": same,
                        "Value": {"IntegerValue": 2},
                    },
                    {
                        "ProductCode": PRODUCT,
                        "Dimension": "Seats",
                        "LicenseArn": other,
                        "Value": {"IntegerValue": 999},
                    },
                    {
                        "ProductCode": "prod-other",
                        "Dimension": "Seats",
                        "LicenseArn": ARN,
                        "Value": {"IntegerValue": 998},
                    },
                ]
            },
        )

        found = MarketplaceEntitlements(client).fetch(EntitlementQuery(PRODUCT, license_arn=ARN))

    assert found is not None
    assert [(e.dimension, e.value) for e in found] == [("Seats", 25), ("Admins", 2)]
    assert '"Reason":"OtherCustomer"' in capsys.readouterr().out.replace(" ", "")
    (warning,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert (warning.ignored, warning.kept) == (2, 2)  # type: ignore[attr-defined]
    assert "999" not in caplog.text


@pytest.mark.parametrize(
    ("query", "field", "theirs"),
    [
        (EntitlementQuery(PRODUCT, customer_identifier="Ab1"), "CustomerIdentifier", "Zz9"),
        (
            EntitlementQuery(PRODUCT, customer_aws_account_id="111122223333"),
            "CustomerAWSAccountId",
            "444455556666",
        ),
    ],
    ids=["legacy-identifier", "account"],
)
def test_entitlements_are_matched_on_the_field_that_was_asked_for(
    client: Any, query: EntitlementQuery, field: str, theirs: str
) -> None:
    asked = query.customer_identifier or query.customer_aws_account_id
    with Stubber(client) as stub:
        stub.add_response(
            "get_entitlements",
            {
                "Entitlements": [
                    {"Dimension": "Mine", field: asked, "Value": {"IntegerValue": 1}},
                    {"Dimension": "Theirs", field: theirs, "Value": {"IntegerValue": 2}},
                ]
            },
        )

        found = MarketplaceEntitlements(client).fetch(query)

    assert [e.dimension for e in found or []] == ["Mine"]


def test_an_invalid_parameter_is_no_answer_once_not_an_error_to_retry(
    client: Any, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    with Stubber(client) as stub:
        stub.add_client_error("get_entitlements", "InvalidParameterException", http_status_code=400)

        found = MarketplaceEntitlements(client).fetch(EntitlementQuery(PRODUCT, license_arn=ARN))

        stub.assert_no_pending_responses()  # one call: botocore does not retry it either
    assert found is None
    assert '"Reason":"InvalidParameter"' in capsys.readouterr().out.replace(" ", "")
    assert [r.levelname for r in caplog.records if r.name == "fulfillment"] == ["ERROR"]


def test_a_subscription_only_product_is_never_asked(client: Any) -> None:
    with Stubber(client) as stub:  # no response queued: any call would fail
        found = MarketplaceEntitlements(client, frozenset({PRODUCT})).fetch(
            EntitlementQuery(PRODUCT, license_arn=ARN)
        )

        stub.assert_no_pending_responses()
    assert found is None


def test_subscription_product_codes_are_optional_and_a_subset_of_the_products() -> None:
    base = {"CUSTOMERS_TABLE_NAME": "customers", "PRODUCT_CODES": "prod-a, prod-b"}

    assert load_lifecycle_settings(base).subscription_product_codes == frozenset()
    chosen = load_lifecycle_settings({**base, "SUBSCRIPTION_PRODUCT_CODES": " prod-b ,"})
    assert chosen.subscription_product_codes == frozenset({"prod-b"})
    with pytest.raises(ConfigurationError) as caught:
        load_lifecycle_settings({**base, "SUBSCRIPTION_PRODUCT_CODES": "prod-c"})
    assert caught.value.variable == "SUBSCRIPTION_PRODUCT_CODES"
