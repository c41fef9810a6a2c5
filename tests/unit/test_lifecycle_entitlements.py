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
        ("InvalidParameterException", 400, "InvalidParameterException"),
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
