"""Metering records: one hour's usage as BatchMeterUsage records, batched, and what each
answer means for its record.

Pure domain. Every subscribed customer gets a record for every configured dimension, zero
included; a record is keyed by (customer, dimension, hour) and built only from the hour's
sealed usage, so every retry sends the identical record, which Marketplace answers `Success`
without billing twice. A customer with a license is metered by `LicenseArn` +
`CustomerAWSAccountId`, one without by `CustomerIdentifier` + `ProductCode`, never both.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, NamedTuple

from fulfillment.metering.usage import Allocation

MAX_BATCH_RECORDS = 25
# BatchMeterUsage refuses a request of 1 MB or more; batches stay well under it.
MAX_BATCH_BYTES = 512 * 1024


class MeterCustomer(NamedTuple):
    """Who a record bills, from the customer item."""

    customer_key: str
    product_code: str
    customer_aws_account_id: str | None
    license_arn: str | None
    customer_identifier: str | None

    @property
    def by_license(self) -> bool:
        return bool(self.license_arn and self.customer_aws_account_id)


class HourUsage(NamedTuple):
    """One customer's sealed usage of one dimension in one hour: the total, and the tagged
    shares of it."""

    quantity: Decimal = Decimal(0)
    tagged: tuple[Allocation, ...] = ()


class Outcome(StrEnum):
    """What became of a record: stored on its result, counted as MeteringRecords{Outcome}."""

    METERED = "metered"
    NOT_SUBSCRIBED = "customer-not-subscribed"
    DUPLICATE = "duplicate-record"
    # Refused by Marketplace as invalid (license, dimension, tag, allocation, timestamp).
    QUARANTINED = "quarantined"
    # Its hour can no longer be sent in Marketplace's window: the usage is lost.
    EXPIRED = "expired"
    # Sent, not answered (UnprocessedRecords, throttling, errors): the next run sends it again.
    PENDING = "pending"


TERMINAL = frozenset(Outcome) - {Outcome.PENDING}


def _number(quantity: Decimal) -> str:
    text = format(quantity.normalize(), "f")
    return text if "." not in text else text.rstrip("0").rstrip(".")


class MeterRecord(NamedTuple):
    customer: MeterCustomer
    dimension: str
    hour: datetime
    usage: HourUsage

    @property
    def key(self) -> tuple[str, str]:
        return self.customer.customer_key, self.dimension

    @property
    def batch_key(self) -> tuple[str, bool]:
        """Records of one product and one kind of identity go in one request."""
        return self.customer.product_code, self.customer.by_license

    def allocations(self) -> list[Allocation]:
        tagged = list(self.usage.tagged)
        untagged = self.usage.quantity - sum((a.quantity for a in tagged), Decimal(0))
        if tagged and untagged > 0:
            tagged.append(Allocation((), untagged))
        return tagged

    def usage_record(self) -> dict[str, Any]:
        """The record as BatchMeterUsage takes it (botocore parameters)."""
        record: dict[str, Any] = {"Timestamp": self.hour, "Dimension": self.dimension}
        if self.customer.by_license:
            record["LicenseArn"] = self.customer.license_arn
            record["CustomerAWSAccountId"] = self.customer.customer_aws_account_id
        else:
            record["CustomerIdentifier"] = self.customer.customer_identifier
        allocations = self.allocations()
        quantities = [self.usage.quantity, *(a.quantity for a in allocations)]
        decimal = any(q != q.to_integral_value() for q in quantities)
        if decimal:
            record["QuantityAsDecimal"] = _number(self.usage.quantity)
        else:
            record["Quantity"] = int(self.usage.quantity)
        if allocations:
            record["UsageAllocations"] = [_allocation(a, decimal) for a in allocations]
        return record

    def identity(self) -> tuple[str | None, str, datetime]:
        """What names this record in an answer: its customer, dimension and hour."""
        customer = self.customer
        who = customer.license_arn if customer.by_license else customer.customer_identifier
        return who, self.dimension, self.hour


def _allocation(allocation: Allocation, decimal: bool) -> dict[str, Any]:
    shaped: dict[str, Any] = (
        {"AllocatedUsageQuantityAsDecimal": _number(allocation.quantity)}
        if decimal
        else {"AllocatedUsageQuantity": int(allocation.quantity)}
    )
    if allocation.tags:
        shaped["Tags"] = [{"Key": key, "Value": value} for key, value in allocation.tags]
    return shaped


def records_for_hour(
    hour: datetime,
    usage: Mapping[tuple[str, str], HourUsage],
    customers: Mapping[str, MeterCustomer],
    subscribed: Iterable[str],
    dimensions: Sequence[str],
) -> list[MeterRecord]:
    """Every record of ``hour``: each dimension of each subscribed customer (zero where
    nothing was reported), and any usage reported for a customer not subscribed any more
    (accepted while it was). Usage of a customer ``customers`` does not know is skipped."""
    keys = {(customer, dimension) for customer in subscribed for dimension in dimensions}
    keys |= set(usage)
    return [
        MeterRecord(
            customers[customer], dimension, hour, usage.get((customer, dimension), HourUsage())
        )
        for customer, dimension in sorted(keys)
        if customer in customers
    ]


def batches(records: Iterable[MeterRecord]) -> list[list[MeterRecord]]:
    """Requests of at most 25 records of one product and one identity kind, under the size
    limit."""
    by_kind: dict[tuple[str, bool], list[MeterRecord]] = {}
    for record in records:
        by_kind.setdefault(record.batch_key, []).append(record)
    found: list[list[MeterRecord]] = []
    for group in by_kind.values():
        batch: list[MeterRecord] = []
        size = 0
        for record in group:
            record_size = len(json.dumps(record.usage_record(), default=str))
            if batch and (len(batch) == MAX_BATCH_RECORDS or size + record_size > MAX_BATCH_BYTES):
                found.append(batch)
                batch, size = [], 0
            batch.append(record)
            size += record_size
        if batch:
            found.append(batch)
    return found


def request(batch: Sequence[MeterRecord]) -> dict[str, Any]:
    """The BatchMeterUsage parameters of one batch: ProductCode for legacy records only."""
    parameters: dict[str, Any] = {"UsageRecords": [r.usage_record() for r in batch]}
    if batch and not batch[0].customer.by_license:
        parameters["ProductCode"] = batch[0].customer.product_code
    return parameters


_STATUS_OUTCOMES = {
    "Success": Outcome.METERED,
    "CustomerNotSubscribed": Outcome.NOT_SUBSCRIBED,
    "DuplicateRecord": Outcome.DUPLICATE,
}


def _answered_identity(record: Mapping[str, Any]) -> tuple[str | None, str, datetime]:
    who = record.get("LicenseArn") or record.get("CustomerIdentifier")
    return who, str(record.get("Dimension")), record["Timestamp"]


def outcomes(
    batch: Sequence[MeterRecord], answer: Mapping[str, Any]
) -> dict[tuple[str, str], tuple[Outcome, str | None]]:
    """What the answer says of each record of the batch: (outcome, metering record id);
    a record the answer does not mention is pending."""
    by_identity = {record.identity(): record for record in batch}
    found: dict[tuple[str, str], tuple[Outcome, str | None]] = {
        record.key: (Outcome.PENDING, None) for record in batch
    }
    for result in answer.get("Results") or []:
        record = by_identity.get(_answered_identity(result.get("UsageRecord") or {}))
        outcome = _STATUS_OUTCOMES.get(str(result.get("Status")))
        if record is not None and outcome is not None:
            found[record.key] = (outcome, result.get("MeteringRecordId"))
    return found
