"""Adapter: the Marketplace Metering API's ResolveCustomer, behind the Marketplace port."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from fulfillment.contract import MarketplaceErrorCode
from fulfillment.customers.licenses import InvalidLicenseArnError, parse_license_arn
from fulfillment.customers.models import ResolvedCustomer
from fulfillment.registration.errors import (
    ExpiredTokenError,
    IncompleteCustomerError,
    InvalidTokenError,
    MarketplaceDisabledError,
    MarketplaceError,
    MarketplaceUnavailableError,
)

if TYPE_CHECKING:
    from mypy_boto3_meteringmarketplace import MarketplaceMeteringClient

_ERRORS: dict[str, type[MarketplaceError]] = {
    MarketplaceErrorCode.INVALID_TOKEN: InvalidTokenError,
    MarketplaceErrorCode.EXPIRED_TOKEN: ExpiredTokenError,
    MarketplaceErrorCode.THROTTLING: MarketplaceUnavailableError,
    MarketplaceErrorCode.INTERNAL_SERVICE_ERROR: MarketplaceUnavailableError,
    MarketplaceErrorCode.DISABLED_API: MarketplaceDisabledError,
}


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
                raise MarketplaceError(MarketplaceErrorCode.OTHER_ERROR) from None
            raise error(code) from None
        except BotoCoreError:
            # Timeouts and connection failures that outlasted botocore's retries.
            raise MarketplaceUnavailableError(MarketplaceErrorCode.NETWORK_ERROR) from None
        customer = ResolvedCustomer(
            product_code=answer.get("ProductCode") or "",
            customer_aws_account_id=answer.get("CustomerAWSAccountId") or "",
            license_arn=answer.get("LicenseArn") or None,
            customer_identifier=answer.get("CustomerIdentifier") or None,
            agreement_id=answer.get("Metadata", {}).get("AgreementId") or None,
        )
        if not customer.product_code or not (customer.license_arn or customer.customer_identifier):
            raise IncompleteCustomerError(MarketplaceErrorCode.MISSING_IDENTITY)
        # by_account indexes the attribute: DynamoDB refuses an empty string there, so a
        # registration without it could be neither stored nor replayed.
        if not customer.customer_aws_account_id:
            raise IncompleteCustomerError(MarketplaceErrorCode.MISSING_ACCOUNT_ID)
        if customer.license_arn:
            try:
                parse_license_arn(customer.license_arn)
            except InvalidLicenseArnError:
                raise IncompleteCustomerError(MarketplaceErrorCode.INVALID_LICENSE_ARN) from None
        return customer
