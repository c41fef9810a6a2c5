"""Entry point of the registration events publisher (DynamoDB stream and SQS retry queue).

Stream records of customer items become `Customer Registered` / `Customer Signed Up` events
on the stack's bus; what the bus refuses is parked on the retry queue, and a record whose
events neither took is reported as a batch item failure so Lambda delivers it again. The same
function consumes the retry queue: a message the bus still refuses stays there (and goes to
the dead-letter queue after the queue's maxReceiveCount).

A batch is published as a whole (PutEvents takes ten entries per call), so the answer is
Lambda's partial batch response built from what ``fulfillment.events`` reports undelivered,
not a per-record handler: Powertools' batch utility would cost this function ~20 ms of cold
start (asyncio and every event data class) to format that list (docs/decisions.md).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from boto3.dynamodb.types import TypeDeserializer

from fulfillment.contract import CUSTOMER_SK, PK, SK
from fulfillment.core import aws, startup
from fulfillment.core.observability import logger
from fulfillment.events.delivery import EventBridgeBus, SqsRetryQueue
from fulfillment.events.derivation import (
    CustomerChange,
    DomainEvent,
    Image,
    MalformedMessageError,
    deliver,
    republish,
)
from fulfillment.events.settings import get_publisher_settings

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


class _StreamImageDeserializer(TypeDeserializer):
    """boto3's deserializer for stream images. A stream record carries binary values as
    base64 text, which boto3's ``Binary`` refuses (it wants bytes): they stay text, as
    Powertools' ``DynamoDBRecord`` kept them. No event reads them; a customer item holding one
    must not fail its whole batch."""

    def _deserialize_b(self, value: Any) -> Any:
        return value

    def _deserialize_bs(self, value: Any) -> Any:
        return set(value)


_DESERIALIZER = _StreamImageDeserializer()


def _image(attributes: dict[str, Any] | None) -> Image | None:
    if not attributes:
        return None
    return {name: _DESERIALIZER.deserialize(value) for name, value in attributes.items()}


def _change(data: dict[str, Any]) -> CustomerChange | None:
    """The customer item's change, or None for any other item (the event source filters
    them out already; this keeps a misconfigured filter from publishing sessions)."""
    keys = _image(data.get("Keys")) or {}
    if keys.get(SK) != CUSTOMER_SK:
        return None
    return CustomerChange(
        customer_key=str(keys[PK]),
        old=_image(data.get("OldImage")),
        new=_image(data.get("NewImage")),
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


def _publish_changes(records: list[dict[str, Any]]) -> dict[str, Any]:
    sequence_numbers = [record["dynamodb"]["SequenceNumber"] for record in records]
    changes: dict[str, CustomerChange] = {}
    for sequence_number, record in zip(sequence_numbers, records, strict=True):
        change = _change(record["dynamodb"])
        if change is not None:
            changes[sequence_number] = change
    undelivered = deliver(changes, bus=_bus(), retry_queue=_retry_queue())
    return _partial_response(sequence_numbers, undelivered)


def _republish(records: list[dict[str, Any]]) -> dict[str, Any]:
    events: dict[str, DomainEvent] = {}
    malformed: set[str] = set()
    for record in records:
        message_id = record["messageId"]
        try:
            events[message_id] = DomainEvent.from_message(record["body"])
        except MalformedMessageError as error:
            # Left to fail until the queue moves it to its dead-letter queue for a person.
            logger.error(
                "retry queue message is not a registration event",
                extra={"message_id": message_id, "problem": str(error)},
            )
            malformed.add(message_id)
    failed = republish(events, bus=_bus()) | malformed
    for message_id, domain_event in events.items():
        if message_id not in failed:
            logger.info(
                "event published from the retry queue",
                extra={"event_id": domain_event.event_id, "detail_type": domain_event.detail_type},
            )
    return _partial_response((record["messageId"] for record in records), failed)


@logger.inject_lambda_context(clear_state=True, log_event=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = event.get("Records") or []
    if not records:
        return {"batchItemFailures": []}
    source = records[0].get("eventSource")
    if source == QUEUE_SOURCE:
        return _republish(records)
    if source == STREAM_SOURCE:
        return _publish_changes(records)
    raise ValueError(f"unexpected event source {source!r}")


startup.imports_done()
