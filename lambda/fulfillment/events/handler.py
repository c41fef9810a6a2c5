"""Entry point of the registration events publisher (DynamoDB stream and SQS retry queue).

Stream records of customer items become `Customer Registered` / `Customer Signed Up` events
on the stack's bus; what the bus refuses is parked on the retry queue, and a record whose
events neither took is reported as a batch item failure so Lambda delivers it again. The same
function consumes the retry queue: a message the bus still refuses stays there (and goes to
the dead-letter queue after the queue's maxReceiveCount).

A batch is published as a whole (PutEvents takes ten entries per call), so the answer is
Lambda's partial batch response built from what `deliver` / `republish` report undelivered:
Powertools' batch utility hands records to a handler one at a time (docs/decisions.md).
Records are read through Powertools' event data classes, which also deserialize the images.

`Publisher` holds the dependencies (the bus, the retry queue). Lambda passes none, so
`lambda_handler` uses `default_publisher()`, built from the environment on first use, once per
execution environment; tests pass their own (`lambda_handler(event, context, publisher=...)`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBStreamEvent,
    StreamRecord,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from fulfillment.contract import CUSTOMER_SK, PK, SK
from fulfillment.core import aws, startup
from fulfillment.core.observability import logger
from fulfillment.events.delivery import EventBridgeBus, SqsRetryQueue
from fulfillment.events.derivation import (
    CustomerChange,
    DomainEvent,
    EventBus,
    MalformedMessageError,
    RetryQueue,
    deliver,
    republish,
)
from fulfillment.events.settings import get_publisher_settings

STREAM_SOURCE = "aws:dynamodb"
QUEUE_SOURCE = "aws:sqs"


class UndeliveredError(Exception):
    """A record's events reached neither the bus nor the retry queue: Lambda must retry it."""


def _change(stream: StreamRecord) -> CustomerChange | None:
    """The customer item's change, or None for any other item (the event source filters
    them out already; this keeps a misconfigured filter from publishing sessions)."""
    if stream.keys.get(SK) != CUSTOMER_SK:
        return None
    # No image (an insert's old one, a removal's new one) reads as an empty dict.
    return CustomerChange(
        customer_key=str(stream.keys[PK]),
        old=stream.old_image or None,
        new=stream.new_image or None,
    )


def _partial_response(identifiers: Iterable[str], failed: Collection[str]) -> dict[str, Any]:
    """Lambda's partial batch response for a batch of ``identifiers``, of which ``failed``
    must be delivered again. A batch where every record failed raises instead, as
    Powertools does: the invocation fails, so Lambda retries it with backoff (and a stream
    mapping bisects it)."""
    identifiers = list(identifiers)
    failures = [identifier for identifier in identifiers if identifier in failed]
    if failures and len(failures) == len(identifiers):
        raise UndeliveredError(f"none of the batch's {len(failures)} records was delivered")
    return {"batchItemFailures": [{"itemIdentifier": identifier} for identifier in failures]}


class Publisher:
    """Registration events publishing wired to the bus and the retry queue."""

    def __init__(self, *, bus: EventBus, retry_queue: RetryQueue) -> None:
        self.bus = bus
        self.retry_queue = retry_queue

    @classmethod
    def from_environment(cls) -> Publisher:
        """The deployed wiring: the settings' bus and queue through the shared boto3 clients."""
        settings = get_publisher_settings()
        return cls(
            bus=EventBridgeBus(aws.events(), settings.event_bus_name),
            retry_queue=SqsRetryQueue(aws.sqs(), settings.publish_retry_queue_url),
        )

    def handle(self, event: dict[str, Any]) -> dict[str, Any]:
        """Publish a stream batch, or republish a retry-queue batch; Lambda's partial batch
        response names the records to deliver again."""
        records = event.get("Records") or []
        if not records:
            return {"batchItemFailures": []}
        source = records[0].get("eventSource")
        if source == QUEUE_SOURCE:
            return self._republish(SQSEvent(event))
        if source == STREAM_SOURCE:
            return self._publish_changes(DynamoDBStreamEvent(event))
        raise ValueError(f"unexpected event source {source!r}")

    def _publish_changes(self, event: DynamoDBStreamEvent) -> dict[str, Any]:
        sequence_numbers: list[str] = []
        changes: dict[str, CustomerChange] = {}
        for record in event.records:
            # Not record.dynamodb, typed optional: a stream record always carries it.
            stream = StreamRecord(record["dynamodb"])
            sequence_numbers.append(stream["SequenceNumber"])
            change = _change(stream)
            if change is not None:
                changes[stream["SequenceNumber"]] = change
        undelivered = deliver(changes, bus=self.bus, retry_queue=self.retry_queue)
        return _partial_response(sequence_numbers, undelivered)

    def _republish(self, event: SQSEvent) -> dict[str, Any]:
        records = list(event.records)
        events: dict[str, DomainEvent] = {}
        malformed: set[str] = set()
        for record in records:
            try:
                events[record.message_id] = DomainEvent.from_message(record.body)
            except MalformedMessageError as error:
                # Left to fail until the queue moves it to its dead-letter queue for a person.
                logger.error(
                    "retry queue message is not a registration event",
                    extra={"message_id": record.message_id, "problem": str(error)},
                )
                malformed.add(record.message_id)
        failed = republish(events, bus=self.bus) | malformed
        for message_id, domain_event in events.items():
            if message_id not in failed:
                logger.info(
                    "event published from the retry queue",
                    extra={
                        "event_id": domain_event.event_id,
                        "detail_type": domain_event.detail_type,
                    },
                )
        return _partial_response((record.message_id for record in records), failed)


@cache
def default_publisher() -> Publisher:
    """The publisher Lambda's invocations use: built on first use, once per container."""
    return Publisher.from_environment()


@logger.inject_lambda_context(clear_state=True, log_event=False)
def lambda_handler(
    event: dict[str, Any], context: LambdaContext, *, publisher: Publisher | None = None
) -> dict[str, Any]:
    """Handle one batch with ``publisher`` (default: ``default_publisher()``)."""
    return (publisher or default_publisher()).handle(event)


startup.imports_done()
