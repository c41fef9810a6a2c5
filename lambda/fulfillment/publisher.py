"""Entry point of the registration events publisher (DynamoDB stream and SQS retry queue).

Stream records of customer items become `Customer Registered` / `Customer Signed Up` events
on the stack's bus; what the bus refuses is parked on the retry queue, and a record whose
events neither took is reported as a batch item failure so Lambda delivers it again. The same
function consumes the retry queue: a message the bus still refuses stays there (and goes to
the dead-letter queue after the queue's maxReceiveCount).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from fulfillment import aws, startup
from fulfillment.customers import CUSTOMER_SK, PK, SK
from fulfillment.delivery import EventBridgeBus, SqsRetryQueue
from fulfillment.events import (
    CustomerChange,
    DomainEvent,
    MalformedMessageError,
    deliver,
    republish,
)
from fulfillment.observability import logger
from fulfillment.settings import get_publisher_settings

STREAM_SOURCE = "aws:dynamodb"
QUEUE_SOURCE = "aws:sqs"


class UndeliveredError(Exception):
    """A record's events reached neither the bus nor the retry queue: Lambda must retry it."""


@cache
def _bus() -> EventBridgeBus:
    return EventBridgeBus(aws.events(), get_publisher_settings().event_bus_name)


@cache
def _retry_queue() -> SqsRetryQueue:
    return SqsRetryQueue(aws.sqs(), get_publisher_settings().publish_retry_queue_url)


def _change(record: DynamoDBRecord) -> CustomerChange | None:
    """The customer item's change, or None for any other item (the event source filters
    them out already; this keeps a misconfigured filter from publishing sessions)."""
    data = record.dynamodb
    if data is None or data.keys.get(SK) != CUSTOMER_SK:
        return None
    raw = record.raw_event["dynamodb"]
    return CustomerChange(
        customer_key=str(data.keys[PK]),
        old=data.old_image if raw.get("OldImage") else None,
        new=data.new_image if raw.get("NewImage") else None,
    )


def _publish_changes(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    changes: dict[str, CustomerChange] = {}
    for raw in event["Records"]:
        record = DynamoDBRecord(raw)
        change = _change(record)
        if change is not None and record.dynamodb and record.dynamodb.sequence_number:
            changes[record.dynamodb.sequence_number] = change
    undelivered = deliver(changes, bus=_bus(), retry_queue=_retry_queue())

    def verdict(record: DynamoDBRecord) -> None:
        sequence_number = record.dynamodb.sequence_number if record.dynamodb else None
        if sequence_number in undelivered:
            raise UndeliveredError(f"stream record {sequence_number} not delivered")

    return dict(
        process_partial_response(
            event=event,
            record_handler=verdict,
            processor=BatchProcessor(event_type=EventType.DynamoDBStreams),
            context=context,
        )
    )


def _republish(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    events: dict[str, DomainEvent] = {}
    malformed: set[str] = set()
    for raw in event["Records"]:
        record = SQSRecord(raw)
        try:
            events[record.message_id] = DomainEvent.from_message(record.body)
        except MalformedMessageError as error:
            # Left to fail until the queue moves it to its dead-letter queue for a person.
            logger.error(
                "retry queue message is not a registration event",
                extra={"message_id": record.message_id, "problem": str(error)},
            )
            malformed.add(record.message_id)
    failed = republish(events, bus=_bus()) | malformed
    for message_id, domain_event in events.items():
        if message_id not in failed:
            logger.info(
                "event published from the retry queue",
                extra={"event_id": domain_event.event_id, "detail_type": domain_event.detail_type},
            )

    def verdict(record: SQSRecord) -> None:
        if record.message_id in failed:
            raise UndeliveredError(f"message {record.message_id} not published")

    return dict(
        process_partial_response(
            event=event,
            record_handler=verdict,
            processor=BatchProcessor(event_type=EventType.SQS),
            context=context,
        )
    )


@logger.inject_lambda_context(clear_state=True, log_event=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = event.get("Records") or []
    if not records:
        return {"batchItemFailures": []}
    source = records[0].get("eventSource")
    if source == QUEUE_SOURCE:
        return _republish(event, context)
    if source == STREAM_SOURCE:
        return _publish_changes(event, context)
    raise ValueError(f"unexpected event source {source!r}")


startup.imports_done()
