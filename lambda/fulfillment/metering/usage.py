"""Usage reports: what a seller may report, and which hour a report's usage is billed in.

Pure domain: no boto3, no clock (the caller passes ``now``). A report names its customer by
registration id, license ARN, or legacy customer identifier (with the product code); its
quantity is a non-negative decimal within BatchMeterUsage's bounds (10 integer digits, 6
decimals); its time is not in the future and young enough that the hourly run still sends it
inside Marketplace's window (docs/metering.md). Every refusal names a bounded reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Set
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, NamedTuple

from fulfillment.customers.licenses import InvalidLicenseArnError, parse_license_arn
from fulfillment.customers.models import legacy_key, license_key

MAX_REPORTS = 100
# Marketplace refuses a record 24 hours or more after its time, and last month's after 06:00
# UTC on the first: usage is accepted only while the hourly run (a few minutes past each hour)
# can still send its hour with room to retry.
ACCEPTED_AGE = timedelta(hours=20)
MONTH_CUT_OFF = timedelta(hours=5)
# Clocks differ: a report up to this far ahead is taken as now.
CLOCK_SKEW = timedelta(minutes=5)
MAX_QUANTITY = Decimal("9999999999.999999")
MAX_ALLOCATIONS = 2500
MAX_TAGS = 5
_USAGE_ID = re.compile(r"[A-Za-z0-9._:/=+@-]{1,128}")
_TAG = re.compile(r"[a-zA-Z0-9+ \-=._:/@]+")
_IDENTIFIER = re.compile(r"[!-~]{1,255}")


class UsageRejection(StrEnum):
    """Why a report was refused: the ``reason`` of a rejected report, and the Reason of the
    UsageRejected metric."""

    MALFORMED = "Malformed"
    UNKNOWN_DIMENSION = "UnknownDimension"
    INVALID_QUANTITY = "InvalidQuantity"
    INVALID_TIMESTAMP = "InvalidTimestamp"
    FUTURE_TIMESTAMP = "FutureTimestamp"
    TOO_OLD = "TooOld"
    INVALID_TAGS = "InvalidTags"
    UNKNOWN_CUSTOMER = "UnknownCustomer"
    NOT_SUBSCRIBED = "NotSubscribed"


class Allocation(NamedTuple):
    """A share of a report's quantity, with the buyer's cost-allocation tags."""

    tags: tuple[tuple[str, str], ...]
    quantity: Decimal


class CustomerRef(NamedTuple):
    """How a report names its customer: a customer key, or a registration to look up."""

    customer_key: str | None = None
    registration_id: str | None = None


class UsageReport(NamedTuple):
    usage_id: str
    customer: CustomerRef
    dimension: str
    quantity: Decimal
    at: datetime
    allocations: tuple[Allocation, ...] = ()


class InvalidReportError(ValueError):
    def __init__(self, reason: UsageRejection) -> None:
        super().__init__(reason)
        self.reason = reason


def hour_of(at: datetime) -> datetime:
    """The start of the hour ``at`` falls in: the bucket's time, and the record's Timestamp."""
    return at.replace(minute=0, second=0, microsecond=0)


def too_old(hour: datetime, now: datetime) -> bool:
    """Whether usage of ``hour`` can no longer be sent in time."""
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    closed_month = hour < month_start and now >= month_start + MONTH_CUT_OFF
    return now - hour > ACCEPTED_AGE or closed_month


def parse_report(raw: object, dimensions: Set[str], now: datetime) -> UsageReport:
    """One report of a `POST /usage` body; raise InvalidReportError with its reason."""
    if not isinstance(raw, Mapping):
        raise InvalidReportError(UsageRejection.MALFORMED)
    usage_id = raw.get("usageId")
    if not isinstance(usage_id, str) or not _USAGE_ID.fullmatch(usage_id):
        raise InvalidReportError(UsageRejection.MALFORMED)
    dimension = raw.get("dimension")
    if not isinstance(dimension, str) or dimension not in dimensions:
        raise InvalidReportError(UsageRejection.UNKNOWN_DIMENSION)
    quantity = _quantity(raw.get("quantity"))
    at = _timestamp(raw.get("timestamp"), now)
    allocations = _allocations(raw.get("allocations"), quantity)
    return UsageReport(usage_id, _customer(raw), dimension, quantity, at, allocations)


def _customer(raw: Mapping[str, Any]) -> CustomerRef:
    registration, license_arn = raw.get("registrationId"), raw.get("licenseArn")
    identifier, product = raw.get("customerIdentifier"), raw.get("productCode")
    given = [v for v in (registration, license_arn, identifier) if v is not None]
    if len(given) != 1 or not all(isinstance(v, str) and _IDENTIFIER.fullmatch(v) for v in given):
        raise InvalidReportError(UsageRejection.MALFORMED)
    if isinstance(registration, str):
        return CustomerRef(registration_id=registration)
    if isinstance(license_arn, str):
        try:
            parse_license_arn(license_arn)
        except InvalidLicenseArnError:
            raise InvalidReportError(UsageRejection.UNKNOWN_CUSTOMER) from None
        return CustomerRef(customer_key=license_key(license_arn))
    if not isinstance(product, str) or not _IDENTIFIER.fullmatch(product):
        raise InvalidReportError(UsageRejection.MALFORMED)
    return CustomerRef(customer_key=legacy_key(product, str(identifier)))


def _quantity(value: object) -> Decimal:
    # A JSON number or a decimal string; never a float's binary rounding.
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
        raise InvalidReportError(UsageRejection.INVALID_QUANTITY)
    try:
        quantity = Decimal(value)
    except InvalidOperation:
        raise InvalidReportError(UsageRejection.INVALID_QUANTITY) from None
    if (
        not quantity.is_finite()
        or quantity < 0
        or quantity > MAX_QUANTITY
        or quantity != quantity.quantize(Decimal("0.000001"))
    ):
        raise InvalidReportError(UsageRejection.INVALID_QUANTITY)
    return quantity


def _timestamp(value: object, now: datetime) -> datetime:
    if not isinstance(value, str):
        raise InvalidReportError(UsageRejection.INVALID_TIMESTAMP)
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidReportError(UsageRejection.INVALID_TIMESTAMP) from None
    if at.tzinfo is None:
        raise InvalidReportError(UsageRejection.INVALID_TIMESTAMP)
    if at > now + CLOCK_SKEW:
        raise InvalidReportError(UsageRejection.FUTURE_TIMESTAMP)
    at = min(at.astimezone(now.tzinfo), now)
    if too_old(hour_of(at), now):
        raise InvalidReportError(UsageRejection.TOO_OLD)
    return at


def _allocations(value: object, quantity: Decimal) -> tuple[Allocation, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_ALLOCATIONS:
        raise InvalidReportError(UsageRejection.INVALID_TAGS)
    allocations = []
    for raw in value:
        if not isinstance(raw, Mapping):
            raise InvalidReportError(UsageRejection.INVALID_TAGS)
        tags = raw.get("tags")
        if not isinstance(tags, Mapping) or not 1 <= len(tags) <= MAX_TAGS:
            raise InvalidReportError(UsageRejection.INVALID_TAGS)
        pairs = tuple(sorted(tags.items()))
        for key, tag_value in pairs:
            if not (isinstance(key, str) and 1 <= len(key) <= 100 and _TAG.fullmatch(key)):
                raise InvalidReportError(UsageRejection.INVALID_TAGS)
            if not (isinstance(tag_value, str) and len(tag_value) <= 256):
                raise InvalidReportError(UsageRejection.INVALID_TAGS)
            if not _TAG.fullmatch(tag_value):
                raise InvalidReportError(UsageRejection.INVALID_TAGS)
        allocations.append(Allocation(pairs, _quantity(raw.get("quantity"))))
    if sum((a.quantity for a in allocations), Decimal(0)) != quantity:
        raise InvalidReportError(UsageRejection.INVALID_TAGS)
    if len({a.tags for a in allocations}) != len(allocations):
        raise InvalidReportError(UsageRejection.INVALID_TAGS)
    return tuple(allocations)
