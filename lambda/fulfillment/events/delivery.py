"""Adapters: the EventBridge bus registration events go to, and the SQS retry queue that
keeps what the bus refused. Both translate SDK failures into the domain's own errors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from fulfillment.contract import REGISTRATION_EVENT_SOURCE
from fulfillment.core.observability import logger
from fulfillment.events.derivation import (
    DomainEvent,
    EventBusUnavailableError,
    RetryQueueUnavailableError,
)


class EventBridgeClient(Protocol):
    """The one call made on boto3's EventBridge client."""

    def put_events(self, *, Entries: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]: ...


class SqsClient(Protocol):
    """The one call made on boto3's SQS client."""

    def send_message_batch(
        self, *, QueueUrl: str, Entries: Sequence[Mapping[str, Any]]
    ) -> Mapping[str, Any]: ...


def _error_code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__


def _time(occurred_at: str | None) -> dict[str, datetime]:
    # The event's time is when the customer changed, not when this attempt published it.
    if not occurred_at:
        return {}
    try:
        return {"Time": datetime.fromisoformat(occurred_at)}
    except ValueError:
        return {}


class EventBridgeBus:
    def __init__(self, client: EventBridgeClient, bus_name: str) -> None:
        self._client = client
        self._bus = bus_name

    def put(self, events: Sequence[DomainEvent]) -> list[DomainEvent]:
        entries = [
            {
                "Source": REGISTRATION_EVENT_SOURCE,
                "DetailType": event.detail_type,
                "Detail": event.to_detail_json(),
                "EventBusName": self._bus,
                **_time(event.occurred_at),
            }
            for event in events
        ]
        try:
            answer = self._client.put_events(Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            logger.warning(
                "PutEvents failed", extra={"error_code": _error_code(exc), "events": len(events)}
            )
            raise EventBusUnavailableError(_error_code(exc)) from exc
        if not answer.get("FailedEntryCount"):
            return []
        refused = []
        # Result entries are in the order of the request's entries.
        for event, result in zip(events, answer.get("Entries", []), strict=False):
            if result.get("ErrorCode") or not result.get("EventId"):
                refused.append(event)
                logger.warning(
                    "PutEvents refused an entry",
                    extra={
                        "error_code": result.get("ErrorCode"),
                        "event_id": event.event_id,
                        "detail_type": event.detail_type,
                    },
                )
        # Fewer results than entries: treat the unanswered ones as refused.
        refused += list(events[len(answer.get("Entries", [])) :])
        return refused


class SqsRetryQueue:
    def __init__(self, client: SqsClient, queue_url: str) -> None:
        self._client = client
        self._url = queue_url

    def keep(self, events: Sequence[DomainEvent]) -> list[DomainEvent]:
        entries = [
            {"Id": str(index), "MessageBody": event.to_message()}
            for index, event in enumerate(events)
        ]
        try:
            answer = self._client.send_message_batch(QueueUrl=self._url, Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            logger.error(
                "retry queue refused events",
                extra={"error_code": _error_code(exc), "events": len(events)},
            )
            raise RetryQueueUnavailableError(_error_code(exc)) from exc
        failed = {str(entry.get("Id")): entry for entry in answer.get("Failed", [])}
        refused = []
        for index, event in enumerate(events):
            log = {"event_id": event.event_id, "detail_type": event.detail_type}
            if str(index) in failed:
                refused.append(event)
                code = failed[str(index)].get("Code")
                logger.error("retry queue refused an event", extra={**log, "error_code": code})
            else:
                logger.info("event kept on the retry queue", extra=log)
        return refused
