"""Adapter: the usage table, and the customers the hourly run meters (DynamoDB).

Usage table items (contract.USAGE), all with a TTL:

- `USAGE#<usage id>` / `USAGE`: a report's id, remembered for USAGE_ID_TTL, so a report sent
  again is counted once;
- `HOUR#<hour>` / `PART#<digest>`: the usage of one (customer, dimension, tag set) in one hour,
  added to atomically (`ADD quantity`), never read and written back;
- `HOUR#<hour>` / `SEAL`: written by the hourly run before it reads the hour; a report's
  transaction checks it is absent, so nothing is added to an hour once it is being metered
  (such a report goes to the current hour);
- `HOUR#<hour>` / `RESULT#<digest>`: what Marketplace answered for one record;
- `HOUR#<hour>` / `DONE`: every record of the hour has a final answer.

A report is one TransactWriteItems: Put the usage id (absent), Update the part, ConditionCheck
the hour's SEAL absent and the customer active (customers table). A cancelled transaction says
which condition failed; only a sealed hour costs a second call.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from botocore.exceptions import BotoCoreError, ClientError

from fulfillment.contract import (
    BY_STATUS,
    CUSTOMER_SK,
    EXPIRES_AT,
    PK,
    SESSION_PREFIX,
    SESSION_SK,
    SK,
)
from fulfillment.core.errors import StorageUnavailableError
from fulfillment.customers.status import CustomerStatus
from fulfillment.metering.records import TERMINAL, HourUsage, MeterCustomer, Outcome
from fulfillment.metering.usage import Allocation, UsageRejection, UsageReport, hour_of

# Reports are accepted for about a day (usage.ACCEPTED_AGE); their ids outlive that.
USAGE_ID_TTL = timedelta(days=7)
# Parts, seals and results: kept for the seller to audit a month's billing.
HOUR_TTL = timedelta(days=62)
# After unsubscribe-pending or an agreement's end, AWS takes final usage for one hour.
FINAL_WINDOW = timedelta(hours=1)
_TRANSACTION_ATTEMPTS = 3


class Accepted(NamedTuple):
    hour: datetime


class Duplicate(NamedTuple):
    pass


class Rejected(NamedTuple):
    reason: UsageRejection


AddOutcome = Accepted | Duplicate | Rejected


def hour_text(hour: datetime) -> str:
    return hour.isoformat(timespec="seconds")


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def _timestamp(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds")


def _active_condition() -> str:
    # Subscribed; registered before any lifecycle status arrived (ResolveCustomer answered for
    # an active subscription); or ended less than FINAL_WINDOW ago (:final).
    return (
        "#status = :subscribed "
        "OR (attribute_not_exists(#status) AND attribute_exists(registration_count)) "
        "OR (#status IN (:pending, :unsubscribed) AND status_changed_at >= :final)"
    )


class DynamoDBUsageStore:
    def __init__(self, client: Any, usage_table: str, customers_table: str) -> None:
        self._client = client
        self._usage = usage_table
        self._customers = customers_table

    # -- intake ----------------------------------------------------------------------------

    def customer_keys_of_registrations(self, registration_ids: Iterable[str]) -> dict[str, str]:
        """The customer key of each live registration (session) among ``registration_ids``."""
        ids = sorted(set(registration_ids))
        found: dict[str, str] = {}
        for start in range(0, len(ids), 100):
            keys = [
                {PK: {"S": SESSION_PREFIX + i}, SK: {"S": SESSION_SK}}
                for i in ids[start : start + 100]
            ]
            for item in self._batch_get(self._customers, keys, "pk, customer_pk"):
                found[item[PK]["S"].removeprefix(SESSION_PREFIX)] = item["customer_pk"]["S"]
        return found

    def add(self, report: UsageReport, customer_key: str, now: datetime) -> AddOutcome:
        """Count ``report`` once, in its hour, or in the current hour if its own is sealed."""
        hour = hour_of(report.at)
        for _ in range(_TRANSACTION_ATTEMPTS):
            reasons = self._add_once(report, customer_key, hour, now)
            if reasons is None:
                return Accepted(hour)
            codes = [r.get("Code") for r in reasons]
            if codes[0] == "ConditionalCheckFailed":
                return Duplicate()
            if codes[3] == "ConditionalCheckFailed":
                known = "Item" in reasons[3]
                reason = UsageRejection.NOT_SUBSCRIBED if known else UsageRejection.UNKNOWN_CUSTOMER
                return Rejected(reason)
            if codes[2] == "ConditionalCheckFailed":
                # Its hour is being metered: the usage counts in the open hour instead.
                hour = hour_of(now)
            elif "TransactionConflict" not in codes:
                raise StorageUnavailableError(str(codes))
        raise StorageUnavailableError("TransactionConflict")

    def _add_once(
        self, report: UsageReport, customer_key: str, hour: datetime, now: datetime
    ) -> list[dict[str, Any]] | None:
        hour_pk = {"S": "HOUR#" + hour_text(hour)}
        usage_expires = str(int((now + USAGE_ID_TTL).timestamp()))
        hour_expires = str(int((hour + HOUR_TTL).timestamp()))
        parts = [(a.tags, a.quantity) for a in report.allocations] or [((), report.quantity)]
        items: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self._usage,
                    "Item": {
                        PK: {"S": "USAGE#" + report.usage_id},
                        SK: {"S": "USAGE"},
                        "customer_key": {"S": customer_key},
                        "dimension": {"S": report.dimension},
                        "hour": {"S": hour_text(hour)},
                        "quantity": {"N": str(report.quantity)},
                        "received_at": {"S": _timestamp(now)},
                        EXPIRES_AT: {"N": usage_expires},
                    },
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        ]
        # One part per tag set (a report without allocations is one untagged part); the
        # transaction's second item is the first part, so reason indexes stay fixed.
        updates = [
            {
                "Update": {
                    "TableName": self._usage,
                    "Key": {
                        PK: hour_pk,
                        SK: {"S": "PART#" + _part(customer_key, report.dimension, tags)},
                    },
                    "UpdateExpression": (
                        "ADD quantity :q SET customer_key = :c, dimension = :d, tags = :t, "
                        f"{EXPIRES_AT} = :e"
                    ),
                    "ExpressionAttributeValues": {
                        ":q": {"N": str(quantity)},
                        ":c": {"S": customer_key},
                        ":d": {"S": report.dimension},
                        ":t": {"S": json.dumps(tags)},
                        ":e": {"N": hour_expires},
                    },
                }
            }
            for tags, quantity in parts
        ]
        checks = [
            {
                "ConditionCheck": {
                    "TableName": self._usage,
                    "Key": {PK: hour_pk, SK: {"S": "SEAL"}},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {
                "ConditionCheck": {
                    "TableName": self._customers,
                    "Key": {PK: {"S": customer_key}, SK: {"S": CUSTOMER_SK}},
                    "ConditionExpression": _active_condition(),
                    "ExpressionAttributeNames": {"#status": "status"},
                    "ExpressionAttributeValues": {
                        ":subscribed": {"S": CustomerStatus.SUBSCRIBED},
                        ":pending": {"S": CustomerStatus.UNSUBSCRIBE_PENDING},
                        ":unsubscribed": {"S": CustomerStatus.UNSUBSCRIBED},
                        ":final": {"S": _timestamp(now - FINAL_WINDOW)},
                    },
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
        ]
        ordered = [items[0], updates[0], *checks, *updates[1:]]
        try:
            self._client.transact_write_items(TransactItems=ordered)
        except ClientError as exc:
            reasons: list[dict[str, Any]] = list(exc.response.get("CancellationReasons") or [])  # type: ignore[arg-type]
            if reasons:
                return reasons
            raise StorageUnavailableError(_code(exc)) from exc
        except BotoCoreError as exc:
            raise StorageUnavailableError(type(exc).__name__) from exc
        return None

    # -- the hourly run ----------------------------------------------------------------------

    def done_hours(self, hours: Sequence[datetime]) -> set[datetime]:
        keys = [{PK: {"S": "HOUR#" + hour_text(h)}, SK: {"S": "DONE"}} for h in hours]
        found = {item[PK]["S"] for item in self._batch_get(self._usage, keys, "pk")}
        return {h for h in hours if "HOUR#" + hour_text(h) in found}

    def seal(self, hour: datetime, now: datetime) -> None:
        """No report is added to ``hour`` after this returns (idempotent)."""
        item = {
            PK: {"S": "HOUR#" + hour_text(hour)},
            SK: {"S": "SEAL"},
            "sealed_at": {"S": _timestamp(now)},
            EXPIRES_AT: {"N": str(int((hour + HOUR_TTL).timestamp()))},
        }
        try:
            self._client.put_item(
                TableName=self._usage, Item=item, ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise StorageUnavailableError(_code(exc)) from exc
        except BotoCoreError as exc:
            raise StorageUnavailableError(type(exc).__name__) from exc

    def hour(self, hour: datetime) -> tuple[dict[tuple[str, str], HourUsage], set[tuple[str, str]]]:
        """The sealed hour's usage by (customer, dimension), and the records already answered
        for good."""
        parts: dict[tuple[str, str], list[Allocation]] = {}
        done: set[tuple[str, str]] = set()
        for item in self._query_hour(hour):
            sort_key = item[SK]["S"]
            key = (
                item.get("customer_key", {}).get("S", ""),
                item.get("dimension", {}).get("S", ""),
            )
            if sort_key.startswith("PART#"):
                tags = tuple(tuple(pair) for pair in json.loads(item["tags"]["S"]))
                parts.setdefault(key, []).append(Allocation(tags, Decimal(item["quantity"]["N"])))
            elif sort_key.startswith("RESULT#") and item["outcome"]["S"] in TERMINAL:
                done.add(key)
        usage = {
            key: HourUsage(
                sum((p.quantity for p in found), Decimal(0)),
                tuple(p for p in found if p.tags),
            )
            for key, found in parts.items()
        }
        return usage, done

    def record_results(
        self,
        hour: datetime,
        results: Mapping[tuple[str, str], tuple[Outcome, str | None, str | None, Decimal]],
        now: datetime,
    ) -> None:
        """Store each record's (outcome, metering record id, error code, quantity sent)."""
        expires = str(int((hour + HOUR_TTL).timestamp()))
        requests = []
        for (customer_key, dimension), (outcome, record_id, error, quantity) in results.items():
            item: dict[str, Any] = {
                PK: {"S": "HOUR#" + hour_text(hour)},
                SK: {"S": "RESULT#" + _digest(customer_key, dimension)},
                "customer_key": {"S": customer_key},
                "dimension": {"S": dimension},
                "outcome": {"S": outcome},
                "quantity": {"N": str(quantity)},
                "answered_at": {"S": _timestamp(now)},
                EXPIRES_AT: {"N": expires},
            }
            if record_id:
                item["metering_record_id"] = {"S": record_id}
            if error:
                item["error_code"] = {"S": error}
            requests.append({"PutRequest": {"Item": item}})
        for start in range(0, len(requests), 25):
            self._batch_write(requests[start : start + 25])

    def mark_done(self, hour: datetime, now: datetime) -> None:
        item = {
            PK: {"S": "HOUR#" + hour_text(hour)},
            SK: {"S": "DONE"},
            "done_at": {"S": _timestamp(now)},
            EXPIRES_AT: {"N": str(int((hour + HOUR_TTL).timestamp()))},
        }
        with _storage_errors():
            self._client.put_item(TableName=self._usage, Item=item)

    def subscribed_customers(self) -> dict[str, tuple[MeterCustomer, str]]:
        """Every subscribed customer, with the time it became so (the by_status index)."""
        pages = self._client.get_paginator("query").paginate(
            TableName=self._customers,
            IndexName=BY_STATUS,
            KeyConditionExpression="#s = :s AND sk = :c",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":s": {"S": CustomerStatus.SUBSCRIBED},
                ":c": {"S": CUSTOMER_SK},
            },
        )
        with _storage_errors():
            return {
                item[PK]["S"]: (_customer(item), item.get("status_changed_at", {}).get("S", ""))
                for page in pages
                for item in page["Items"]
            }

    def customers(self, keys: Iterable[str]) -> dict[str, MeterCustomer]:
        wanted = [{PK: {"S": k}, SK: {"S": CUSTOMER_SK}} for k in sorted(set(keys))]
        found: dict[str, MeterCustomer] = {}
        for start in range(0, len(wanted), 100):
            for item in self._batch_get(self._customers, wanted[start : start + 100], None):
                found[item[PK]["S"]] = _customer(item)
        return found

    # -- helpers -----------------------------------------------------------------------------

    def _query_hour(self, hour: datetime) -> Iterator[dict[str, Any]]:
        pages = self._client.get_paginator("query").paginate(
            TableName=self._usage,
            KeyConditionExpression="pk = :h",
            ExpressionAttributeValues={":h": {"S": "HOUR#" + hour_text(hour)}},
            ConsistentRead=True,
        )
        with _storage_errors():
            for page in pages:
                yield from page["Items"]

    def _batch_get(
        self, table: str, keys: list[dict[str, Any]], projection: str | None
    ) -> list[dict[str, Any]]:
        if not keys:
            return []
        request: dict[str, Any] = {"Keys": keys, "ConsistentRead": True}
        if projection:
            request["ProjectionExpression"] = projection
        found: list[dict[str, Any]] = []
        pending: dict[str, Any] = {table: request}
        with _storage_errors():
            for _ in range(5):
                answer = self._client.batch_get_item(RequestItems=pending)
                found += answer.get("Responses", {}).get(table, [])
                pending = answer.get("UnprocessedKeys") or {}
                if not pending:
                    return found
        raise StorageUnavailableError("UnprocessedKeys")

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        pending: dict[str, Any] = {self._usage: requests}
        with _storage_errors():
            for _ in range(5):
                answer = self._client.batch_write_item(RequestItems=pending)
                pending = answer.get("UnprocessedItems") or {}
                if not pending:
                    return
        raise StorageUnavailableError("UnprocessedItems")


def _part(customer_key: str, dimension: str, tags: tuple[tuple[str, str], ...]) -> str:
    return _digest(customer_key, dimension, json.dumps(tags))


def _customer(item: Mapping[str, Any]) -> MeterCustomer:
    def text(name: str) -> str | None:
        value = item.get(name, {}).get("S")
        return str(value) if value else None

    return MeterCustomer(
        customer_key=item[PK]["S"],
        product_code=text("product_code") or "",
        customer_aws_account_id=text("customer_aws_account_id"),
        license_arn=text("license_arn"),
        customer_identifier=text("customer_identifier"),
    )


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "ClientError"))


@contextmanager
def _storage_errors() -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        raise StorageUnavailableError(_code(exc)) from exc
    except BotoCoreError as exc:
        raise StorageUnavailableError(type(exc).__name__) from exc
