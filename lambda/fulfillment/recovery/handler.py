"""Entry point of the recovery processor (SQS: registrations parked by the fulfillment function).

A registration whose session or customer write failed after ResolveCustomer succeeded waits on
the recovery queue; this function writes both, each at most once (a redelivered message
changes nothing). The event source delivers one message per invocation (infra/recovery.py),
so a message that fails (DynamoDB still unavailable, a message that is not a parked
registration) fails its invocation alone: SQS delivers it again, and after the queue's
maxReceiveCount it moves to the dead-letter queue, which is alarmed: a paying customer is
not recorded until someone redrives it. The failure is raised, not reported as a batch item
failure: the mapping does not report batch item failures, so it would delete a message that
a partial batch response (Powertools' batch utility) names as failed (docs/decisions.md).

`RecoveryProcessor` holds the dependencies (the customers table, the idempotency records).
Lambda passes none, so `lambda_handler` uses `default_processor()`, built from the environment
on first use, once per execution environment; tests pass their own
(`lambda_handler(event, context, processor=...)`).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSEvent, SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from fulfillment.contract import ERROR_CODE_DIMENSION, MetricName
from fulfillment.core import aws, startup
from fulfillment.core.errors import StorageUnavailableError
from fulfillment.core.ids import pseudonym
from fulfillment.core.observability import count, count_by, logger, metrics
from fulfillment.customers.models import (
    MalformedParkedRegistrationError,
    ParkedRegistration,
    UnstorableParkedRegistrationError,
)
from fulfillment.customers.store import DynamoDBCustomerStore
from fulfillment.recovery.records import DynamoDBIdempotencyRecords
from fulfillment.recovery.replay import IdempotencyRecords, RecoveryStore, replay
from fulfillment.recovery.settings import get_recovery_settings


class RecoveryProcessor:
    """The replay use case wired to the customers table and idempotency records it writes."""

    def __init__(self, *, customers: RecoveryStore, records: IdempotencyRecords) -> None:
        self.customers = customers
        self.records = records

    @classmethod
    def from_environment(cls) -> RecoveryProcessor:
        """The deployed wiring: the settings' tables through the shared DynamoDB client."""
        settings, client = get_recovery_settings(), aws.dynamodb()
        return cls(
            customers=DynamoDBCustomerStore(client, settings.customers_table_name),
            records=DynamoDBIdempotencyRecords(client, settings.idempotency_table_name),
        )

    def handle(self, event: dict[str, Any]) -> None:
        """Replay the event's parked registration; an exception fails the invocation, so SQS
        delivers the message again. Were a batch ever larger than one message, a failure would
        deliver all of it again, which replays harmlessly: each write applies at most once."""
        for record in SQSEvent(event).records:
            self.replay(record)

    def replay(self, record: SQSRecord) -> None:
        """Write one message's parked registration; raise when it is not recorded."""
        receive_count = int(record.attributes.approximate_receive_count)
        try:
            parked = ParkedRegistration.from_message(record.body)
        except UnstorableParkedRegistrationError as error:
            # Every delivery would fail the same way, and a redrive from the dead-letter queue
            # too: acknowledged, logged and counted with the fulfillment URL's own refusal
            # (it feeds the Marketplace failure alarm). The buyer registers again from
            # Marketplace; ResolveCustomer's answer decides then.
            logger.error(
                "parked registration can never be stored, dropped: ResolveCustomer's answer "
                "cannot key a customer",
                extra={
                    "message_id": record.message_id,
                    "problem": str(error),
                    "receive_count": receive_count,
                },
            )
            count_by(MetricName.MARKETPLACE_ERROR, ERROR_CODE_DIMENSION, error.code)
            return
        except MalformedParkedRegistrationError as error:
            # Never the body: only what identifies the message and why it was refused.
            logger.error(
                "recovery message is not a parked registration",
                extra={
                    "message_id": record.message_id,
                    "problem": str(error),
                    "receive_count": receive_count,
                },
            )
            raise
        log = {
            "message_id": record.message_id,
            "customer_ref": pseudonym(parked.customer.customer_key),
            "product_code": parked.product_code,
            "registered_by_request": parked.request_id,
            "receive_count": receive_count,
        }
        try:
            replayed = replay(parked, customers=self.customers, records=self.records)
        except StorageUnavailableError as error:
            logger.error(
                "parked registration not recorded yet, SQS will deliver it again",
                extra={**log, "error_code": str(error)},
            )
            raise
        if replayed.applied:
            count(MetricName.REGISTRATION_RECOVERED)
        logger.info(
            "parked registration recorded",
            extra={
                **log,
                # Not applied: already applied, or overtaken by a newer registration.
                "already_applied": not replayed.applied,
                "idempotency_record_completed": replayed.record_completed,
            },
        )


@cache
def default_processor() -> RecoveryProcessor:
    """The processor Lambda's invocations use: built on first use, once per container."""
    return RecoveryProcessor.from_environment()


@logger.inject_lambda_context(clear_state=True, log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(
    event: dict[str, Any],
    context: LambdaContext,
    *,
    processor: RecoveryProcessor | None = None,
) -> None:
    """Replay one SQS message with ``processor`` (default: ``default_processor()``)."""
    (processor or default_processor()).handle(event)


startup.imports_done()
