"""Entry point of the usage intake: IAM-authorized ``POST /usage`` on the seller's hand-off API.

The body is ``{"reports": [...]}``, at most 100 reports; the answer gives each report's fate
in order: ``accepted`` (with the hour it is billed in), ``duplicate`` (its ``usageId`` was
counted already) or ``rejected`` with a reason. A report is accepted only once it is stored, so
when storage fails mid-batch the caller sends the whole batch again: what was stored is a
duplicate then, never counted twice. docs/metering.md describes the rules.

Dependencies: ``lambda_handler(event, context, store=..., settings=..., clock=...)``; each
left out, as Lambda calls it, is built from the environment once per container.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import Any, NamedTuple, Protocol

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from fulfillment.contract import OUTCOME_DIMENSION, MetricName
from fulfillment.core import aws, startup
from fulfillment.core.answers import Detail, Log, lookup
from fulfillment.core.answers import report as report_error
from fulfillment.core.errors import ConfigurationError, StorageUnavailableError
from fulfillment.core.observability import count_by, logger, metrics
from fulfillment.core.responses import caller as caller_of
from fulfillment.core.responses import json_answer
from fulfillment.metering.settings import MeteringSettings, get_metering_settings
from fulfillment.metering.store import Accepted, AddOutcome, Duplicate, DynamoDBUsageStore, Rejected
from fulfillment.metering.usage import (
    MAX_REPORTS,
    InvalidReportError,
    UsageRejection,
    UsageReport,
    parse_report,
)

MAX_BODY_BYTES = 1 << 20
RETRY_AFTER_SECONDS = 5


class MalformedUsageBodyError(ValueError):
    """The body is not ``{"reports": [...]}`` of at most MAX_REPORTS reports."""


class UsageStore(Protocol):
    def customer_keys_of_registrations(self, registration_ids: list[str]) -> dict[str, str]: ...

    def add(self, report: UsageReport, customer_key: str, now: datetime) -> AddOutcome: ...


class ErrorAnswer(NamedTuple):
    status: int
    message: str
    outcome: str
    log: Log
    retry_after: int | None = None


_REFUSED = "usage batch refused"

# The one table from error to answer for this entry point.
ERRORS: dict[type[Exception], ErrorAnswer] = {
    MalformedUsageBodyError: ErrorAnswer(
        400,
        f'The body must be {{"reports": [...]}} with 1 to {MAX_REPORTS} reports.',
        "MalformedBody",
        Log(logging.WARNING, _REFUSED),
    ),
    StorageUnavailableError: ErrorAnswer(
        503,
        "Storage is temporarily unavailable; send the same batch again shortly.",
        "StorageUnavailable",
        Log(logging.ERROR, _REFUSED, details=(Detail.ERROR,)),
        retry_after=RETRY_AFTER_SECONDS,
    ),
    ConfigurationError: ErrorAnswer(
        500,
        "Internal error.",
        "ConfigurationFault",
        Log(logging.ERROR, _REFUSED, details=(Detail.VARIABLE,)),
    ),
}
UNFORESEEN = ErrorAnswer(
    500, "Internal error.", "Unexpected", Log(logging.ERROR, "usage batch failed", traceback=True)
)


def _reports(body: str | None) -> list[Any]:
    if body is None or len(body.encode("utf-8", "surrogatepass")) > MAX_BODY_BYTES:
        raise MalformedUsageBodyError("size")
    try:
        # Decimals, never floats: 0.1 + 0.2 must bill 0.3.
        parsed = json.loads(body, parse_float=Decimal)
    except ValueError:
        raise MalformedUsageBodyError("json") from None
    reports = parsed.get("reports") if isinstance(parsed, dict) else None
    if not isinstance(reports, list) or not 1 <= len(reports) <= MAX_REPORTS:
        raise MalformedUsageBodyError("reports")
    return reports


def _result(raw: object, outcome: AddOutcome | UsageRejection) -> dict[str, Any]:
    usage_id = raw.get("usageId") if isinstance(raw, dict) else None
    found: dict[str, Any] = {"usageId": usage_id if isinstance(usage_id, str) else None}
    if isinstance(outcome, Accepted):
        found |= {"status": "accepted", "hour": outcome.hour.isoformat()}
    elif isinstance(outcome, Duplicate):
        found["status"] = "duplicate"
    else:
        reason = outcome.reason if isinstance(outcome, Rejected) else outcome
        found |= {"status": "rejected", "reason": str(reason)}
    return found


def take_usage(
    raw_reports: list[Any], store: UsageStore, settings: MeteringSettings, now: datetime
) -> list[dict[str, Any]]:
    """Each report parsed, its customer found, and stored once; the results in order."""
    parsed: list[UsageReport | UsageRejection] = []
    for raw in raw_reports:
        try:
            parsed.append(parse_report(raw, frozenset(settings.dimensions), now))
        except InvalidReportError as error:
            parsed.append(error.reason)
    registrations = [
        p.customer.registration_id
        for p in parsed
        if isinstance(p, UsageReport) and p.customer.registration_id
    ]
    keys = store.customer_keys_of_registrations(registrations) if registrations else {}
    results = []
    for raw, report in zip(raw_reports, parsed, strict=True):
        outcome: AddOutcome | UsageRejection = (
            report if isinstance(report, UsageRejection) else (UsageRejection.UNKNOWN_CUSTOMER)
        )
        if isinstance(report, UsageReport):
            key = report.customer.customer_key or keys.get(report.customer.registration_id or "")
            if key is not None:
                outcome = store.add(report, key, now)
        results.append(_result(raw, outcome))
    return results


def utc_now() -> datetime:
    return datetime.now(UTC)


@cache
def _store_for(usage_table: str, customers_table: str) -> DynamoDBUsageStore:
    return DynamoDBUsageStore(aws.dynamodb(), usage_table, customers_table)


# log_event=False explicitly: the body names customers.
@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True, log_event=False
)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(
    event: dict[str, Any],
    context: LambdaContext,
    *,
    store: UsageStore | None = None,
    settings: MeteringSettings | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> dict[str, Any]:
    request_context = event.get("requestContext") or {}
    request_id = str(request_context.get("requestId") or context.aws_request_id)
    caller = caller_of(request_context)
    try:
        settings = settings or get_metering_settings()
        store = store or _store_for(settings.usage_table_name, settings.customers_table_name)
        results = take_usage(_reports(event.get("body")), store, settings, clock())
    except Exception as error:  # every failure becomes a JSON answer
        answer = lookup(error, ERRORS, UNFORESEEN)
        report_error(error, answer.log, context={"caller": caller, "outcome": answer.outcome})
        headers = {"Retry-After": str(answer.retry_after)} if answer.retry_after else {}
        return json_answer(
            answer.status, {"message": answer.message, "requestId": request_id}, headers
        )
    tally = Counter(
        r["status"] if r["status"] != "rejected" else f"rejected-{r['reason']}" for r in results
    )
    for outcome, number in tally.items():
        count_by(MetricName.USAGE_REPORTS, OUTCOME_DIMENSION, outcome, number)
    logger.info("usage batch taken", extra={"caller": caller, "outcomes": dict(tally)})
    return json_answer(200, {"results": results, "requestId": request_id})


startup.imports_done()
