"""Adapter: the Marketplace Metering API's ResolveCustomer, behind the Marketplace port."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from fulfillment.errors import (
    ExpiredTokenError,
    IncompleteCustomerError,
    InvalidTokenError,
    MarketplaceDisabledError,
    MarketplaceError,
    MarketplaceUnavailableError,
)
from fulfillment.models import ResolvedCustomer

if TYPE_CHECKING:
    from mypy_boto3_meteringmarketplace import MarketplaceMeteringClient

_ERRORS: dict[str, type[MarketplaceError]] = {
    "InvalidTokenException": InvalidTokenError,
    "ExpiredTokenException": ExpiredTokenError,
    "ThrottlingException": MarketplaceUnavailableError,
    "InternalServiceErrorException": MarketplaceUnavailableError,
    "DisabledApiException": MarketplaceDisabledError,
}
# Codes outside the table are reported under one name so the metric stays bounded.
OTHER_ERROR_CODE = "OtherError"
NETWORK_ERROR_CODE = "NetworkError"
MISSING_IDENTITY_CODE = "MissingIdentity"


class MeteringMarketplace:
    def __init__(self, client: MarketplaceMeteringClient) -> None:
        self._client = client

    def resolve_customer(self, token: str) -> ResolvedCustomer:
        try:
            answer = self._client.resolve_customer(RegistrationToken=token)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            error = _ERRORS.get(code)
            if error is None:
                raise MarketplaceError(OTHER_ERROR_CODE) from None
            raise error(code) from None
        except BotoCoreError:
            # Timeouts and connection failures that outlasted botocore's retries.
            raise MarketplaceUnavailableError(NETWORK_ERROR_CODE) from None
        customer = ResolvedCustomer(
            product_code=answer.get("ProductCode") or "",
            customer_aws_account_id=answer.get("CustomerAWSAccountId") or "",
            license_arn=answer.get("LicenseArn") or None,
            customer_identifier=answer.get("CustomerIdentifier") or None,
            agreement_id=answer.get("Metadata", {}).get("AgreementId") or None,
        )
        if not customer.product_code or not (customer.license_arn or customer.customer_identifier):
            raise IncompleteCustomerError(MISSING_IDENTITY_CODE)
        return customer
