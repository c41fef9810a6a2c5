"""ResolveCustomer through the real botocore client, with its answers stubbed (no network)."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from botocore.stub import Stubber

from fulfillment.registration.errors import (
    ExpiredTokenError,
    IncompleteCustomerError,
    InvalidTokenError,
    MarketplaceDisabledError,
    MarketplaceError,
    MarketplaceUnavailableError,
)
from fulfillment.registration.marketplace import MeteringMarketplace

TOKEN = "tok+en/="


@pytest.fixture
def stubbed() -> Iterator[tuple[MeteringMarketplace, Stubber]]:
    client = boto3.client("meteringmarketplace", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield MeteringMarketplace(client), stubber
        stubber.assert_no_pending_responses()


def test_new_style_answer_is_mapped(stubbed: tuple[MeteringMarketplace, Stubber]) -> None:
    marketplace, stubber = stubbed
    stubber.add_response(
        "resolve_customer",
        {
            "CustomerIdentifier": "",
            "CustomerAWSAccountId": "111122223333",
            "ProductCode": "prod-abc",
            "LicenseArn": "arn:aws:license-manager::111122223333:license:l-1",
            "Metadata": {"AgreementId": "agmt-1"},
        },
        {"RegistrationToken": TOKEN},
    )

    customer = marketplace.resolve_customer(TOKEN)

    assert customer.customer_identifier is None
    assert customer.license_arn == "arn:aws:license-manager::111122223333:license:l-1"
    assert customer.agreement_id == "agmt-1"
    assert customer.customer_key == "LICENSE#l-1"


def test_answer_without_identity_is_incomplete(
    stubbed: tuple[MeteringMarketplace, Stubber],
) -> None:
    marketplace, stubber = stubbed
    stubber.add_response(
        "resolve_customer",
        {"CustomerIdentifier": "", "CustomerAWSAccountId": "1", "ProductCode": "prod-abc"},
    )

    with pytest.raises(IncompleteCustomerError):
        marketplace.resolve_customer(TOKEN)


def test_answer_without_account_id_is_incomplete(
    stubbed: tuple[MeteringMarketplace, Stubber],
) -> None:
    # No account id cannot be written to the indexed attribute: refused before any write.
    # (An empty one the model's validation refuses here; test_api.py covers it.)
    marketplace, stubber = stubbed
    stubber.add_response(
        "resolve_customer",
        {
            "CustomerIdentifier": "Ab1",
            "ProductCode": "prod-abc",
            "LicenseArn": "arn:aws:license-manager::111122223333:license:l-1",
        },
    )

    with pytest.raises(IncompleteCustomerError) as raised:
        marketplace.resolve_customer(TOKEN)

    assert raised.value.code == "MissingAccountId"


@pytest.mark.parametrize(
    "license_arn",
    [
        "arn:aws:iam::111122223333:role/l-1",
        "arn:aws:license-manager::111122223333:grant:g-1",
        "l-0123456789abcdef",
    ],
)
def test_answer_with_a_license_arn_that_is_no_license_is_incomplete(
    stubbed: tuple[MeteringMarketplace, Stubber], license_arn: str
) -> None:
    # No customer key can be made of it (customers/licenses.py): refused before any write.
    marketplace, stubber = stubbed
    answer = {"CustomerAWSAccountId": "111122223333", "ProductCode": "prod-abc"}
    stubber.add_response("resolve_customer", {**answer, "LicenseArn": license_arn})

    with pytest.raises(IncompleteCustomerError) as raised:
        marketplace.resolve_customer(TOKEN)

    assert raised.value.code == "InvalidLicenseArn"


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("InvalidTokenException", 400, InvalidTokenError),
        ("ExpiredTokenException", 400, ExpiredTokenError),
        ("ThrottlingException", 400, MarketplaceUnavailableError),
        ("InternalServiceErrorException", 500, MarketplaceUnavailableError),
        ("DisabledApiException", 400, MarketplaceDisabledError),
    ],
)
def test_error_codes_become_domain_errors(
    stubbed: tuple[MeteringMarketplace, Stubber],
    code: str,
    status: int,
    error: type[MarketplaceError],
) -> None:
    marketplace, stubber = stubbed
    stubber.add_client_error(
        "resolve_customer",
        service_error_code=code,
        http_status_code=status,
        service_message=f"message with {TOKEN}",
    )

    with pytest.raises(error) as raised:
        marketplace.resolve_customer(TOKEN)

    assert raised.value.code == code
    assert TOKEN not in str(raised.value)


def test_unknown_error_code_is_bounded(stubbed: tuple[MeteringMarketplace, Stubber]) -> None:
    marketplace, stubber = stubbed
    stubber.add_client_error("resolve_customer", service_error_code="SomethingNewException")

    with pytest.raises(MarketplaceError) as raised:
        marketplace.resolve_customer(TOKEN)

    assert raised.value.code == "OtherError"
