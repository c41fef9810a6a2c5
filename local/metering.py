"""The Marketplace stand-in's BatchMeterUsage: the real rules, and a ledger of what it billed.

Rules as the `meteringmarketplace` model's documentation (botocore 1.44) states them:

- at most 25 records a request, one product per request (`ProductCode` for legacy records;
  new integrations send `LicenseArn` + `CustomerAWSAccountId`, never `CustomerIdentifier`);
- a record dated in the future, 24 hours or more in the past, or in a previous month after
  06:00 UTC on the first day of the next month fails the **whole** request
  (`TimestampOutOfBoundsException`), as do a malformed license (`InvalidLicenseException`), a
  dimension the product does not have (`InvalidUsageDimensionException`), a bad tag
  (`InvalidTagException`) and allocations that do not sum to the quantity or mix integer and
  decimal quantities (`InvalidUsageAllocationsException`);
- per record: a customer the stand-in does not know, or one that unsubscribed,
  `CustomerNotSubscribed`; the same customer, dimension and time again with the same quantity
  (compared by value: 17 = 17.0) `Success` without billing twice, with another quantity
  `DuplicateRecord`.

Faults: `throttle_next`/`internal_error_next` (shared with the other APIs), `unprocessed_next`
(that many records of the next calls come back in `UnprocessedRecords`), and a seeded
`fault_rate` (a call is throttled or, as often, half unprocessed). Never deployed.
"""

from __future__ import annotations

import random
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

BATCH_METER_USAGE_TARGET = "AWSMPMeteringService.BatchMeterUsage"
MAX_RECORDS = 25
SUBMISSION_WINDOW = timedelta(hours=24)
MONTH_GRACE = timedelta(hours=6)
_TAG = re.compile(r"[a-zA-Z0-9+ \-=._:/@]+")
_DECIMAL = re.compile(r"(0|[1-9][0-9]{0,9})(\.[0-9]{1,6})?")
_LICENSE = re.compile(
    r"arn:aws[a-zA-Z-]*:license-manager:[^:]*:\d{12}:(license[:/])?l-[0-9a-zA-Z]+"
)


class Refused(Exception):
    """The whole request is refused with this error code."""


@dataclass(frozen=True)
class MeteredCustomer:
    """Who a record may bill: a new integration's license, or a legacy identifier."""

    product_code: str
    customer_aws_account_id: str
    license_arn: str | None
    customer_identifier: str | None


# Resolves a record's identity to a known customer (None: unknown), and says whether that
# customer is subscribed now.
CustomerLookup = Callable[[str | None, str | None, str | None], "MeteredCustomer | None"]
SubscribedCheck = Callable[[MeteredCustomer], bool]


@dataclass
class MeteringFaults:
    unprocessed_next: int = 0
    fault_rate: float = 0.0
    seed: int | None = None


@dataclass
class MeteringLedger:
    """Billed quantities by (customer, dimension, timestamp), and the calls answered."""

    billed: dict[tuple[str, str, str], Decimal] = field(default_factory=dict)
    calls: int = 0
    records_sent: int = 0


def _who(customer: MeteredCustomer) -> str:
    if customer.license_arn:
        return customer.license_arn
    return f"{customer.product_code}/{customer.customer_identifier}"


def _quantity(record: dict[str, Any]) -> tuple[Decimal, bool]:
    """The record's quantity by value, and whether it was sent as a decimal string."""
    has_integer, has_decimal = "Quantity" in record, "QuantityAsDecimal" in record
    if has_integer and has_decimal:
        raise Refused("ValidationException")
    if has_decimal:
        text = record["QuantityAsDecimal"]
        if not isinstance(text, str) or not _DECIMAL.fullmatch(text):
            raise Refused("ValidationException")
        return Decimal(text), True
    value = record.get("Quantity", 1)  # the model's default
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 2**31 - 1:
        raise Refused("ValidationException")
    return Decimal(value), False


def _check_allocations(record: dict[str, Any], quantity: Decimal, decimal: bool) -> None:
    allocations = record.get("UsageAllocations")
    if allocations is None:
        return
    if not isinstance(allocations, list) or not 1 <= len(allocations) <= 2500:
        raise Refused("InvalidUsageAllocationsException")
    total = Decimal(0)
    for allocation in allocations:
        name = "AllocatedUsageQuantityAsDecimal" if decimal else "AllocatedUsageQuantity"
        other = "AllocatedUsageQuantity" if decimal else "AllocatedUsageQuantityAsDecimal"
        if not isinstance(allocation, dict) or other in allocation or name not in allocation:
            raise Refused("InvalidUsageAllocationsException")
        try:
            total += Decimal(str(allocation[name]))
        except InvalidOperation:
            raise Refused("InvalidUsageAllocationsException") from None
        tags = allocation.get("Tags") or []
        if not isinstance(tags, list) or len(tags) > 5:
            raise Refused("InvalidTagException")
        for tag in tags:
            key, value = (tag or {}).get("Key"), (tag or {}).get("Value")
            if not all(isinstance(t, str) and _TAG.fullmatch(t) for t in (key, value)):
                raise Refused("InvalidTagException")
    if total != quantity:
        raise Refused("InvalidUsageAllocationsException")


def _check_time(timestamp: datetime, now: datetime) -> None:
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    closed_month = timestamp < month_start and now >= month_start + MONTH_GRACE
    if timestamp > now or now - timestamp >= SUBMISSION_WINDOW or closed_month:
        raise Refused("TimestampOutOfBoundsException")


def _timestamp(value: object) -> datetime:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).astimezone(UTC)
        except ValueError:
            pass
    raise Refused("ValidationException")


class MeteringStandIn:
    """BatchMeterUsage for the stand-in's customers; thread-safe."""

    def __init__(
        self,
        lookup: CustomerLookup,
        subscribed: SubscribedCheck,
        dimensions: frozenset[str] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._lookup = lookup
        self._subscribed = subscribed
        # The product's metering dimensions; None accepts any (the stand-in lists none).
        self.dimensions = dimensions
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.faults = MeteringFaults()
            self._random = random.Random()  # noqa: S311 - fault injection only
            self.ledger = MeteringLedger()

    def set_faults(self, **settings: Any) -> None:
        with self._lock:
            for name, value in settings.items():
                if not hasattr(self.faults, name):
                    raise ValueError(f"unknown metering fault: {name}")
                setattr(self.faults, name, value)
            if "seed" in settings or "fault_rate" in settings:
                self._random = random.Random(self.faults.seed)  # noqa: S311

    def billed_totals(self) -> dict[tuple[str, str], Decimal]:
        """What was billed per (customer, dimension), every hour added up."""
        with self._lock:
            totals: dict[tuple[str, str], Decimal] = {}
            for (who, dimension, _), quantity in self.ledger.billed.items():
                totals[who, dimension] = totals.get((who, dimension), Decimal(0)) + quantity
            return totals

    def billed(self) -> dict[tuple[str, str, str], Decimal]:
        with self._lock:
            return dict(self.ledger.billed)

    def batch_meter_usage(
        self, request: object, now: datetime | None = None
    ) -> tuple[str | None, dict[str, Any]]:
        """(error code or None, answer) for one decoded request; nothing is billed when the
        request is refused."""
        now = now or datetime.now(UTC)
        if not isinstance(request, dict) or not isinstance(request.get("UsageRecords"), list):
            return "ValidationException", {}
        records: list[Any] = request["UsageRecords"]
        if len(records) > MAX_RECORDS:
            return "ValidationException", {}
        with self._lock:
            self.ledger.calls += 1
            draw = self._random.random() if self.faults.fault_rate else 1.0
            if draw < self.faults.fault_rate / 2:
                return "ThrottlingException", {}
            try:
                product = request.get("ProductCode")
                checked = [self._check(record, product, now) for record in records]
            except Refused as refused:
                return str(refused), {}
            unprocessed = self.faults.unprocessed_next
            if draw < self.faults.fault_rate:
                unprocessed = max(unprocessed, (len(records) + 1) // 2)
            taken = min(unprocessed, len(records))
            self.faults.unprocessed_next -= min(self.faults.unprocessed_next, taken)
            results = [self._bill(record, *facts) for record, facts in checked[taken:]]
            self.ledger.records_sent += len(records) - taken
        return None, {"Results": results, "UnprocessedRecords": records[:taken]}

    def _check(
        self, record: object, product_code: object, now: datetime
    ) -> tuple[dict[str, Any], tuple[MeteredCustomer | None, str, str, Decimal]]:
        if not isinstance(record, dict) or not isinstance(record.get("Dimension"), str):
            raise Refused("ValidationException")
        timestamp = _timestamp(record.get("Timestamp"))
        _check_time(timestamp, now)
        quantity, decimal = _quantity(record)
        _check_allocations(record, quantity, decimal)
        license_arn, identifier = record.get("LicenseArn"), record.get("CustomerIdentifier")
        if license_arn is not None and (
            not isinstance(license_arn, str) or not _LICENSE.fullmatch(license_arn)
        ):
            raise Refused("InvalidLicenseException")
        if license_arn is None and not (identifier and product_code):
            raise Refused("InvalidCustomerIdentifierException")
        if self.dimensions is not None and record["Dimension"] not in self.dimensions:
            raise Refused("InvalidUsageDimensionException")
        code = product_code if isinstance(product_code, str) and product_code else None
        customer = self._lookup(license_arn, identifier, code)
        return record, (customer, record["Dimension"], timestamp.isoformat(), quantity)

    def _bill(
        self,
        record: dict[str, Any],
        customer: MeteredCustomer | None,
        dimension: str,
        at: str,
        quantity: Decimal,
    ) -> dict[str, Any]:
        if customer is None or not self._subscribed(customer):
            return {"UsageRecord": record, "Status": "CustomerNotSubscribed"}
        key = (_who(customer), dimension, at)
        billed = self.ledger.billed.get(key)
        if billed is not None and billed != quantity:
            return {"UsageRecord": record, "Status": "DuplicateRecord"}
        self.ledger.billed[key] = quantity
        record_id = uuid.uuid5(uuid.NAMESPACE_URL, "/".join(key))
        return {"UsageRecord": record, "MeteringRecordId": str(record_id), "Status": "Success"}
