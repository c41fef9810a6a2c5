"""Delivering events: batches, the retry queue as fallback, and the adapters' answers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from fulfillment.events.delivery import EventBridgeBus, SqsRetryQueue
from fulfillment.events.derivation import (
    CustomerChange,
    DomainEvent,
    EventBusUnavailableError,
    RetryQueueUnavailableError,
    deliver,
    derive_events,
    republish,
)

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/retry"


def _registration(n: int) -> CustomerChange:
    image = {
        "product_code": "prod-abc123",
        "customer_aws_account_id": f"{n:012d}",
        "license_arn": f"arn:aws:license-manager::{n:012d}:license:l-{n}",
        "last_registered_at": "2026-11-26T09:15:02.123+00:00",
        "last_registration_id": f"reg-{n}",
        "registration_count": Decimal(1),
    }
    return CustomerChange(f"LICENSE#l-{n}", None, image)


class FakeBus:
    def __init__(self, *, refuse: set[str] | None = None, down: bool = False) -> None:
        self.calls: list[list[DomainEvent]] = []
        self.refuse = refuse or set()
        self.down = down

    def put(self, events: Sequence[DomainEvent]) -> list[DomainEvent]:
        self.calls.append(list(events))
        if self.down:
            raise EventBusUnavailableError("ServiceUnavailable")
        return [e for e in events if e.detail["registrationId"] in self.refuse]

    @property
    def published(self) -> list[DomainEvent]:
        refused = self.refuse
        return [
            e
            for c in self.calls
            for e in c
            if not self.down and e.detail["registrationId"] not in refused
        ]


class FakeQueue:
    def __init__(self, *, down: bool = False) -> None:
        self.kept: list[DomainEvent] = []
        self.down = down

    def keep(self, events: Sequence[DomainEvent]) -> list[DomainEvent]:
        if self.down:
            raise RetryQueueUnavailableError("AccessDenied")
        self.kept += events
        return []


def test_events_go_to_the_bus_in_batches_of_at_most_ten() -> None:
    bus, queue = FakeBus(), FakeQueue()
    changes = {str(n): _registration(n) for n in range(23)}

    undelivered = deliver(changes, bus=bus, retry_queue=queue)

    assert undelivered == set()
    assert [len(call) for call in bus.calls] == [10, 10, 3]
    assert queue.kept == []


def test_entries_the_bus_refuses_are_kept_on_the_retry_queue() -> None:
    bus, queue = FakeBus(refuse={"reg-1"}), FakeQueue()

    undelivered = deliver(
        {"a": _registration(0), "b": _registration(1)}, bus=bus, retry_queue=queue
    )

    assert undelivered == set()
    assert [e.detail["registrationId"] for e in queue.kept] == ["reg-1"]


def test_when_the_retry_queue_fails_too_the_record_is_reported_undelivered() -> None:
    # Given a bus that refuses one customer's event and a retry queue that is down
    bus, queue = FakeBus(refuse={"reg-1"}), FakeQueue(down=True)

    undelivered = deliver(
        {"a": _registration(0), "b": _registration(1)}, bus=bus, retry_queue=queue
    )

    # Then only that record goes back to Lambda, the other one was published
    assert undelivered == {"b"}


def test_a_malformed_change_fails_alone() -> None:
    bad = CustomerChange("LICENSE#x", None, {"registration_count": "one"})
    bus, queue = FakeBus(), FakeQueue()

    undelivered = deliver({"bad": bad, "good": _registration(1)}, bus=bus, retry_queue=queue)

    assert undelivered == {"bad"}
    assert len(bus.published) == 1


def test_republishing_sends_each_event_once_and_reports_refused_messages() -> None:
    (one,) = derive_events(_registration(1))
    (two,) = derive_events(_registration(2))
    bus = FakeBus(refuse={"reg-2"})

    failed = republish({"m1": one, "m1-copy": one, "m2": two}, bus=bus)

    assert failed == {"m2"}
    assert [len(call) for call in bus.calls] == [2]


# -- adapters, against botocore's Stubber (no network) ----------------------------------------


def _client(service: str) -> Any:
    return boto3.session.Session(region_name="us-east-1").client(service)


def test_the_bus_adapter_returns_exactly_the_refused_entries() -> None:
    events = [derive_events(_registration(n))[0] for n in range(3)]
    client = _client("events")
    with Stubber(client) as stub:
        stub.add_response(
            "put_events",
            {
                "FailedEntryCount": 1,
                "Entries": [
                    {"EventId": "e-0"},
                    {"ErrorCode": "InternalFailure", "ErrorMessage": "try again"},
                    {"EventId": "e-2"},
                ],
            },
            {
                "Entries": [
                    {
                        "Source": "fulfillment.registration",
                        "DetailType": "Customer Registered",
                        "Detail": event.to_detail_json(),
                        "EventBusName": "bus",
                        "Time": datetime(2026, 11, 26, 9, 15, 2, 123000, tzinfo=UTC),
                    }
                    for event in events
                ]
            },
        )

        refused = EventBridgeBus(client, "bus").put(events)

    assert refused == [events[1]]


def test_the_bus_adapter_turns_an_sdk_error_into_its_own() -> None:
    client = _client("events")
    with Stubber(client) as stub:
        stub.add_client_error("put_events", "ResourceNotFoundException", http_status_code=400)
        with pytest.raises(EventBusUnavailableError):
            EventBridgeBus(client, "bus").put(derive_events(_registration(1)))


def test_the_queue_adapter_returns_the_messages_sqs_did_not_take() -> None:
    events = [derive_events(_registration(n))[0] for n in range(2)]
    client = _client("sqs")
    with Stubber(client) as stub:
        stub.add_response(
            "send_message_batch",
            {
                "Successful": [
                    {"Id": "0", "MessageId": "m-0", "MD5OfMessageBody": "x" * 32},
                ],
                "Failed": [{"Id": "1", "SenderFault": False, "Code": "InternalError"}],
            },
            {
                "QueueUrl": QUEUE_URL,
                "Entries": [
                    {"Id": str(n), "MessageBody": event.to_message()}
                    for n, event in enumerate(events)
                ],
            },
        )

        refused = SqsRetryQueue(client, QUEUE_URL).keep(events)

    assert refused == [events[1]]


def test_the_queue_adapter_turns_an_sdk_error_into_its_own() -> None:
    client = _client("sqs")
    with Stubber(client) as stub:
        stub.add_client_error("send_message_batch", "AccessDenied", http_status_code=403)
        with pytest.raises(RetryQueueUnavailableError):
            SqsRetryQueue(client, QUEUE_URL).keep(derive_events(_registration(1)))
