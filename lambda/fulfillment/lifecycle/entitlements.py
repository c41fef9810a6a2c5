"""Adapter: GetEntitlements (service `marketplace-entitlement`, us-east-1 only), behind the
Entitlements port. Every page is read; an empty list is an answer, not an error."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from fulfillment.lifecycle.subscriptions import (
    Entitlement,
    EntitlementQuery,
    EntitlementsUnavailableError,
)

# The service exists in us-east-1 only, whatever region the function runs in.
ENTITLEMENT_REGION = "us-east-1"
# Codes outside these are reported under one name so logs and metrics stay bounded.
KNOWN_ERROR_CODES = frozenset(
    {"ThrottlingException", "InternalServiceErrorException", "InvalidParameterException"}
)
OTHER_ERROR_CODE = "OtherError"
NETWORK_ERROR_CODE = "NetworkError"
REPEATED_TOKEN_ERROR_CODE = "RepeatedNextToken"

_VALUE_TYPES = (
    ("IntegerValue", "integer"),
    ("DoubleValue", "double"),
    ("BooleanValue", "boolean"),
    ("StringValue", "string"),
)


class MarketplaceEntitlements:
    def __init__(self, client: Any) -> None:
        self._client = client

    def fetch(self, query: EntitlementQuery) -> list[Entitlement]:
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
        # Every page (a page may be empty and still carry a NextToken). botocore's paginator
        # refuses a token repeated on the very next page only; a token seen on any earlier page
        # would loop until the function times out, so that is refused here.
        seen: set[str] = set()
        pages = self._client.get_paginator("get_entitlements").paginate(
            ProductCode=query.product_code, Filter=filters
        )
        try:
            for page in pages:
                found += [_entitlement(raw) for raw in page.get("Entitlements") or []]
                token = page.get("NextToken")
                if token in seen:
                    raise EntitlementsUnavailableError(REPEATED_TOKEN_ERROR_CODE)
                seen.add(token)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            raise EntitlementsUnavailableError(
                code if code in KNOWN_ERROR_CODES else OTHER_ERROR_CODE
            ) from None
        except BotoCoreError:
            # Timeouts and connection failures that outlasted botocore's retries.
            raise EntitlementsUnavailableError(NETWORK_ERROR_CODE) from None
        return found


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
