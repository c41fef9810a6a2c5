"""Entry point of the hourly metering run (a schedule a few minutes past each hour).

`MeteringRun` holds the dependencies; Lambda passes none, so `lambda_handler` uses
`default_run()`, built from the environment once per execution environment; tests pass their
own. A failure (DynamoDB unavailable) raises: the schedule's next invocation, and the retry of
this one, start again where this one stopped, and nothing is billed twice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from fulfillment.contract import DEFAULT_MARKETPLACE_REGION, OUTCOME_DIMENSION, MetricName
from fulfillment.core import aws, startup
from fulfillment.core.observability import count_by, logger, metrics
from fulfillment.metering.marketplace import MarketplaceMeter
from fulfillment.metering.run import Meter, RunReport, UsageStore, meter_closed_hours
from fulfillment.metering.settings import MeteringSettings, get_metering_settings
from fulfillment.metering.store import DynamoDBUsageStore


class MeteringRun:
    def __init__(self, *, store: UsageStore, meter: Meter, settings: MeteringSettings) -> None:
        self.store = store
        self.meter = meter
        self.settings = settings

    @classmethod
    def from_environment(cls) -> MeteringRun:
        settings = get_metering_settings()
        return cls(
            store=DynamoDBUsageStore(
                aws.dynamodb(), settings.usage_table_name, settings.customers_table_name
            ),
            meter=MarketplaceMeter(aws.batch_metering(DEFAULT_MARKETPLACE_REGION)),
            settings=settings,
        )

    def run(self, now: datetime) -> RunReport:
        report = meter_closed_hours(
            now,
            store=self.store,
            meter=self.meter,
            dimensions=self.settings.dimensions,
            product_codes=self.settings.product_codes,
            dry_run=self.settings.dry_run,
        )
        for outcome, number in report.outcomes.items():
            count_by(MetricName.METERING_RECORDS, OUTCOME_DIMENSION, outcome, number)
        age = (now - report.oldest_unmetered).total_seconds() if report.oldest_unmetered else 0
        metrics.add_metric(
            name=MetricName.OLDEST_UNMETERED_HOUR_AGE, unit=MetricUnit.Seconds, value=age
        )
        if self.settings.dry_run:
            # What would be sent: identities, dimensions, hours, quantities; no contact data.
            for parameters in report.would_send:
                logger.info("metering dry run: would send", extra={"request": parameters})
        logger.info(
            "metering run done",
            extra={
                "hours": report.hours,
                "outcomes": {str(k): v for k, v in report.outcomes.items()},
                "oldest_unmetered_hour": report.oldest_unmetered.isoformat()
                if report.oldest_unmetered
                else None,
                "dry_run": self.settings.dry_run,
            },
        )
        return report


@cache
def default_run() -> MeteringRun:
    return MeteringRun.from_environment()


@logger.inject_lambda_context(clear_state=True, log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(
    event: dict[str, Any], context: LambdaContext, *, run: MeteringRun | None = None
) -> dict[str, Any]:
    """Meter every closed hour not metered yet; the answer summarises the run."""
    report = (run or default_run()).run(datetime.now(UTC))
    return {
        "hours": report.hours,
        "outcomes": {str(k): v for k, v in report.outcomes.items()},
        "oldestUnmeteredHour": report.oldest_unmetered.isoformat()
        if report.oldest_unmetered
        else None,
    }


startup.imports_done()
