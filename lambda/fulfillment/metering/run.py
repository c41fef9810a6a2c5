"""The hourly metering run: every closed, unmetered hour sealed, built into records, sent,
and each record's answer stored.

A use case over two ports (the usage store and the meter), so its rules are tested with the
real adapters against the stand-in and with fakes alike; the caller passes ``now``. A crash at
any point leaves nothing half-billed: a sealed hour's usage never changes, a record already
answered for good is never sent again, and any other is sent again identical.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence, Set
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple, Protocol

from fulfillment.metering.records import (
    TERMINAL,
    HourUsage,
    MeterCustomer,
    MeterRecord,
    Outcome,
    batches,
    records_for_hour,
    request,
)
from fulfillment.metering.usage import hour_of

# Marketplace refuses records 24 hours old; the run looks a little further back so an hour
# that could not be sent in time is recorded as expired (and alarmed), never just dropped.
SENDABLE_AGE = timedelta(hours=23)
LOOKBACK_HOURS = 26
# Last month's records are refused after 06:00 UTC on the first; one hour of margin.
MONTH_CUT_OFF = timedelta(hours=5)

Answers = dict[tuple[str, str], tuple[Outcome, str | None, str | None]]


class UsageStore(Protocol):
    def done_hours(self, hours: Sequence[datetime]) -> set[datetime]: ...

    def seal(self, hour: datetime, now: datetime) -> None: ...

    def hour(
        self, hour: datetime
    ) -> tuple[dict[tuple[str, str], HourUsage], set[tuple[str, str]]]: ...

    def record_results(
        self,
        hour: datetime,
        results: Mapping[tuple[str, str], tuple[Outcome, str | None, str | None, Decimal]],
        now: datetime,
    ) -> None: ...

    def mark_done(self, hour: datetime, now: datetime) -> None: ...

    def subscribed_customers(self) -> dict[str, tuple[MeterCustomer, str]]: ...

    def customers(self, keys: Iterable[str]) -> dict[str, MeterCustomer]: ...


class Meter(Protocol):
    def send(self, batch: Sequence[MeterRecord]) -> Answers: ...


class RunReport(NamedTuple):
    hours: int
    outcomes: Counter[Outcome]
    # The oldest closed hour not yet metered for good after this run, if any.
    oldest_unmetered: datetime | None
    # Dry run: the requests that would have been sent.
    would_send: tuple[dict[str, Any], ...] = ()


def expired(hour: datetime, now: datetime) -> bool:
    """Whether Marketplace would refuse ``hour``'s records now (one would fail its batch)."""
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    closed_month = hour < month_start and now >= month_start + MONTH_CUT_OFF
    return now - hour >= SENDABLE_AGE or closed_month


def _stamp(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds")


def meter_closed_hours(
    now: datetime,
    *,
    store: UsageStore,
    meter: Meter,
    dimensions: Sequence[str],
    product_codes: Set[str],
    dry_run: bool = False,
) -> RunReport:
    """Meter every closed hour of the last LOOKBACK_HOURS that is not done yet."""
    current = hour_of(now)
    hours = [current - timedelta(hours=n) for n in range(LOOKBACK_HOURS, 0, -1)]
    open_hours = [h for h in hours if h not in store.done_hours(hours)]
    roster = {
        key: entry
        for key, entry in store.subscribed_customers().items()
        if entry[0].product_code in product_codes
    }
    counted: Counter[Outcome] = Counter()
    would_send: list[dict[str, Any]] = []
    unmetered: list[datetime] = []
    for hour in open_hours:
        store.seal(hour, now)
        usage, answered = store.hour(hour)
        # Zero records for customers subscribed by the end of the hour.
        end = _stamp(hour + timedelta(hours=1))
        subscribed = [key for key, (_, since) in roster.items() if since < end]
        customers = {key: customer for key, (customer, _) in roster.items()}
        customers |= store.customers(key for key, _ in usage if key not in customers)
        records = [
            r
            for r in records_for_hour(hour, usage, customers, subscribed, dimensions)
            if r.key not in answered
        ]
        if dry_run:
            would_send += [request(batch) for batch in batches(records)]
            unmetered.append(hour)
            continue
        answers: Answers = {}
        if expired(hour, now):
            answers = {r.key: (Outcome.EXPIRED, None, None) for r in records}
        else:
            for batch in batches(records):
                answers.update(meter.send(batch))
        quantities = {r.key: r.usage.quantity for r in records}
        if answers:
            store.record_results(
                hour,
                {key: (*answer, quantities[key]) for key, answer in answers.items()},
                now,
            )
        counted.update(outcome for outcome, _, _ in answers.values())
        if all(outcome in TERMINAL for outcome, _, _ in answers.values()):
            store.mark_done(hour, now)
        else:
            unmetered.append(hour)
    return RunReport(len(open_hours), counted, min(unmetered, default=None), tuple(would_send))
