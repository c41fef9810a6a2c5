"""Adapter: GetEntitlements (service `marketplace-entitlement`, us-east-1 only), behind the
Entitlements port. Every page is read; an empty list is an answer, not an error. None is no
answer: the product is subscription-only (never asked), or the service refused the request
as invalid (permanent: asking again cannot help); the notification's status still applies.
Each entitlement is checked against the customer it was asked for: one of another license,
customer or product is ignored and counted, never stored on this customer."""

from __future__ import annotations

from collections.abc import Set
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from fulfillment.contract import REASON_DIMENSION, EntitlementDiscardReason, MetricName
from fulfillment.core.aws import RepeatedTokenError, every_page
from fulfillment.core.observability import count_by, logger
from fulfillment.customers.licenses import InvalidLicenseArnError, parse_license_arn
from fulfillment.lifecycle.subscriptions import (
    Entitlement,
    EntitlementQuery,
    EntitlementsUnavailableError,
)

# The service exists in us-east-1 only, whatever region the function runs in.
ENTITLEMENT_REGION = "us-east-1"
# Codes outside these are reported under one name so logs and metrics stay bounded.
KNOWN_ERROR_CODES = frozenset({"ThrottlingException", "InternalServiceErrorException"})
OTHER_ERROR_CODE = "OtherError"
NETWORK_ERROR_CODE = "NetworkError"
REPEATED_TOKEN_ERROR_CODE = "RepeatedNextToken"
# A permanent refusal: the request itself is wrong for this product or customer.
INVALID_PARAMETER_ERROR_CODE = "InvalidParameterException"

_VALUE_TYPES = (
    ("IntegerValue", "integer"),
    ("DoubleValue", "double"),
    ("BooleanValue", "boolean"),
    ("StringValue", "string"),
)


class MarketplaceEntitlements:
    def __init__(self, client: Any, subscription_products: Set[str] = frozenset()) -> None:
        self._client = client
        # Products without contract dimensions: nothing to fetch (SUBSCRIPTION_PRODUCT_CODES).
        self._subscription_products = subscription_products

    def fetch(self, query: EntitlementQuery) -> list[Entitlement] | None:
        if query.product_code in self._subscription_products:
            return None
        # The most specific filter: the license (a buyer account can hold several licenses
        # of one product), else the legacy identifier, else the account.
        if query.license_arn:
            filters = {"LICENSE_ARN": [query.license_arn]}
        elif query.customer_identifier:
            filters = {"CUSTOMER_IDENTIFIER": [query.customer_identifier]}
        elif query.customer_aws_account_id:
            filters = {"CUSTOMER_AWS_ACCOUNT_ID": [query.customer_aws_account_id]}
        else:
            raise ValueError("an entitlement query needs a customer filter")
        found: list[Entitlement] = []
        others = 0
        pages = self._client.get_paginator("get_entitlements").paginate(
            ProductCode=query.product_code, Filter=filters
        )
        try:
            for page in every_page(pages, "NextToken"):
                for raw in page.get("Entitlements") or []:
                    if _belongs_to(raw, query):
                        found.append(_entitlement(raw))
                    else:
                        others += 1
        except RepeatedTokenError:
            raise EntitlementsUnavailableError(REPEATED_TOKEN_ERROR_CODE) from None
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code == INVALID_PARAMETER_ERROR_CODE:
                # Not retried (SQS would deliver it five times, then dead-letter it): the
                # same request is refused every time. Logged and counted once.
                logger.error(
                    "GetEntitlements refused the request; entitlements not updated",
                    extra={"error_code": code, "product_code": query.product_code},
                )
                _count_discarded(EntitlementDiscardReason.INVALID_PARAMETER)
                return None
            raise EntitlementsUnavailableError(
                code if code in KNOWN_ERROR_CODES else OTHER_ERROR_CODE
            ) from None
        except BotoCoreError:
            # Timeouts and connection failures that outlasted botocore's retries.
            raise EntitlementsUnavailableError(NETWORK_ERROR_CODE) from None
        if others:
            logger.warning(
                "GetEntitlements answered entitlements of another customer; ignored",
                extra={"ignored": others, "kept": len(found), "product_code": query.product_code},
            )
            _count_discarded(EntitlementDiscardReason.OTHER_CUSTOMER)
        return found


def _count_discarded(reason: EntitlementDiscardReason) -> None:
    count_by(MetricName.ENTITLEMENTS_DISCARDED, REASON_DIMENSION, reason)


def _license_id(arn: str) -> str | None:
    """The license's own id, whichever way its ARN is spelt; None for what is no license's."""
    try:
        return parse_license_arn(arn).license_id
    except InvalidLicenseArnError:
        return None


def _belongs_to(raw: dict[str, Any], query: EntitlementQuery) -> bool:
    """Whether an entitlement is the queried customer's: each identity field it carries must
    name what was asked for (a field it leaves out is no evidence either way)."""
    wanted = (
        ("ProductCode", query.product_code, str),
        ("LicenseArn", query.license_arn, _license_id),
        ("CustomerIdentifier", query.customer_identifier, str),
        ("CustomerAWSAccountId", query.customer_aws_account_id, str),
    )
    for field, asked, normal in wanted:
        given = raw.get(field)
        if asked and given and normal(given) != normal(asked):
            return False
    return True


def _entitlement(raw: dict[str, Any]) -> Entitlement:
    value: int | float | bool | str | None = None
    value_type: str | None = None
    for member, kind in _VALUE_TYPES:
        if member in (raw.get("Value") or {}):
            value, value_type = raw["Value"][member], kind
            break
    expiration = raw.get("ExpirationDate")
    if isinstance(expiration, datetime):
        expiration_text: str | None = expiration.astimezone(UTC).isoformat(timespec="milliseconds")
    else:
        expiration_text = str(expiration) if expiration else None
    return Entitlement(
        dimension=str(raw.get("Dimension") or ""),
        value=value,
        value_type=value_type,
        expiration=expiration_text,
    )
