"""The real publisher against moto's EventBridge and SQS (same server as DynamoDB), with
real-shaped DynamoDB stream and SQS events; and the local stream poller end to end."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from fulfillment.core import aws
from fulfillment.events.delivery import EventBridgeBus, SqsRetryQueue
from fulfillment.events.handler import Publisher, UndeliveredError, lambda_handler
from local.dynamodb import RunningDynamoDB
from local.events import EVENTS_PATH, LocalEvents, start_local_events
from local.gateway import LambdaContext, LocalRequest
from tests.events import form_post
from tests.integration.conftest import PRODUCT, Stack, local_function_environment
from tests.registration_events import (
    LICENSE_ARN,
    sqs_event,
    stream_event,
    stream_record,
)

CONTACT_FIELDS = ("email", "company", "contact_name", "contactName", "phone")


@dataclass
class Pipeline:
    events: Any
    sqs: Any
    bus_name: str
    retry_queue_url: str
    inspection_url: str
    publisher: Publisher | None = None

    def configure(self, *, bus: str | None = None, retry_queue_url: str | None = None) -> None:
        """Point the function at ``bus`` / ``retry_queue_url`` (default: the working ones)."""
        self.publisher = Publisher(
            bus=EventBridgeBus(self.events, bus or self.bus_name),
            retry_queue=SqsRetryQueue(self.sqs, retry_queue_url or self.retry_queue_url),
        )

    def handle(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        """The real handler, as Lambda invokes it, with this pipeline's publisher."""
        return lambda_handler(event, context, publisher=self.publisher)

    def _drain(self, url: str) -> list[dict[str, Any]]:
        messages = []
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]
            ).get("Messages", [])
            if not batch:
                return messages
            messages += batch

    def published(self) -> list[dict[str, Any]]:
        """What reached the bus: the events its rule copied into the inspection queue."""
        return [json.loads(m["Body"]) for m in self._drain(self.inspection_url)]

    def parked(self) -> list[dict[str, Any]]:
        """The retry queue's messages (received, so invisible for the queue's timeout)."""
        return self._drain(self.retry_queue_url)


@pytest.fixture
def pipeline(dynamodb_server: RunningDynamoDB) -> Pipeline:
    suffix = uuid.uuid4().hex[:8]
    # Real clients on moto's server, configured as the function's own (fulfillment.core.aws).
    session = boto3.session.Session(region_name="us-east-1")
    events = session.client("events", endpoint_url=dynamodb_server.url, config=aws.QUEUE_CONFIG)
    sqs = session.client("sqs", endpoint_url=dynamodb_server.url, config=aws.QUEUE_CONFIG)
    bus = f"registrations-{suffix}"
    events.create_event_bus(Name=bus)
    retry_url = sqs.create_queue(
        QueueName=f"retry-{suffix}", Attributes={"VisibilityTimeout": "60"}
    )["QueueUrl"]
    inspection_url = sqs.create_queue(QueueName=f"inspection-{suffix}")["QueueUrl"]
    inspection_arn = sqs.get_queue_attributes(QueueUrl=inspection_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    events.put_rule(
        Name="inspect",
        EventBusName=bus,
        EventPattern=json.dumps({"source": ["fulfillment.registration"]}),
    )
    events.put_targets(
        Rule="inspect", EventBusName=bus, Targets=[{"Id": "q", "Arn": inspection_arn}]
    )
    pipeline = Pipeline(events, sqs, bus, retry_url, inspection_url)
    pipeline.configure()
    return pipeline


@pytest.fixture
def context() -> LambdaContext:
    return LambdaContext(
        function_name="fulfillment-publisher",
        memory_limit_in_mb=256,
        timeout_seconds=120,
        log_stream_name="2026/11/26/[$LATEST]0123456789abcdef",
    )


def _sequence(name: str) -> str:
    return str(stream_record(name)["dynamodb"]["SequenceNumber"])


def test_customer_changes_reach_the_bus_as_registration_events(
    pipeline: Pipeline, context: LambdaContext
) -> None:
    # Given one customer's history as the stream delivers it
    event = stream_event(
        "first_registration", "returning_registration", "signed_up", "status_only", "removed"
    )

    # When the publisher handles it
    response = pipeline.handle(event, context)

    # Then nothing is retried and four events are on the bus, in order
    assert response == {"batchItemFailures": []}
    published = pipeline.published()
    assert [e["detail-type"] for e in published] == [
        "Customer Registered",
        "Customer Registered",
        "Customer Signed Up",
        "Customer Status Changed",
    ]
    first, returning, signed_up, status = (e["detail"] for e in published)
    assert (status["previousStatus"], status["status"]) == (None, "subscribed")
    assert all(e["source"] == "fulfillment.registration" for e in published)
    assert first["firstRegistration"] is True and returning["firstRegistration"] is False
    assert returning["registrationCount"] == 2
    assert signed_up["signedUpAt"] == "2026-11-27T14:43:30.789+00:00"
    assert first["licenseArn"] == LICENSE_ARN
    assert (
        len({first["eventId"], returning["eventId"], signed_up["eventId"], status["eventId"]}) == 4
    )
    for event_ in published:
        for field in CONTACT_FIELDS:
            assert field not in json.dumps(event_["detail"])
    assert pipeline.parked() == []


def test_a_bus_failure_parks_the_event_and_the_retry_queue_publishes_it_later(
    pipeline: Pipeline, context: LambdaContext
) -> None:
    # Given a bus that does not exist (PutEvents raises ResourceNotFoundException)
    pipeline.configure(bus=f"missing-{uuid.uuid4().hex[:8]}")

    # When a registration's record is handled
    response = pipeline.handle(stream_event("first_registration"), context)

    # Then the record succeeds, nothing is on the bus and the event waits on the retry queue
    assert response == {"batchItemFailures": []}
    assert pipeline.published() == []
    (message,) = pipeline.parked()
    assert json.loads(message["Body"])["detailType"] == "Customer Registered"

    # When the bus is fixed and Lambda hands the publisher the retry queue's message
    pipeline.configure()
    retry = sqs_event(message["Body"])
    retry["Records"][0]["messageId"] = message["MessageId"]
    response = pipeline.handle(retry, context)

    # Then it is published, with the id it would have had the first time
    assert response == {"batchItemFailures": []}
    (published,) = pipeline.published()
    assert published["detail-type"] == "Customer Registered"
    assert published["detail"]["eventId"] == json.loads(message["Body"])["detail"]["eventId"]


def test_when_the_retry_queue_fails_too_the_stream_record_is_retried(
    pipeline: Pipeline, context: LambdaContext
) -> None:
    # Given neither the bus nor the retry queue exists
    pipeline.configure(
        bus=f"missing-{uuid.uuid4().hex[:8]}",
        retry_queue_url=pipeline.retry_queue_url.rsplit("/", 1)[0] + "/missing-queue",
    )

    # When a batch with a registration and a change that announces nothing is handled
    response = pipeline.handle(stream_event("first_registration", "removed"), context)

    # Then Lambda is told to deliver the registration's record again (and only it)
    assert response == {"batchItemFailures": [{"itemIdentifier": _sequence("first_registration")}]}

    # And a batch where every record failed fails as a whole (Lambda retries it, and bisects)
    with pytest.raises(UndeliveredError):
        pipeline.handle(stream_event("first_registration"), context)


def test_retry_messages_the_bus_refuses_or_that_are_not_events_stay_on_the_queue(
    pipeline: Pipeline, context: LambdaContext
) -> None:
    # Given an event parked on the retry queue, and a message there that is not an event
    pipeline.configure(bus=f"missing-{uuid.uuid4().hex[:8]}")
    pipeline.handle(stream_event("signed_up"), context)
    (message,) = pipeline.parked()
    batch = sqs_event(message["Body"], "not an event")
    batch["Records"][0]["messageId"] = message["MessageId"]
    junk = batch["Records"][1]["messageId"]

    # When the bus still refuses, the whole batch fails (both stay; DLQ after 5 receives)
    with pytest.raises(UndeliveredError):
        pipeline.handle(batch, context)

    # When the bus is back, the event is published and only the junk is reported
    pipeline.configure()
    response = pipeline.handle(batch, context)

    assert response == {"batchItemFailures": [{"itemIdentifier": junk}]}
    assert [e["detail-type"] for e in pipeline.published()] == ["Customer Signed Up"]


def test_binary_attributes_in_an_image_do_not_fail_the_batch(
    pipeline: Pipeline, context: LambdaContext
) -> None:
    # Given a customer item that also holds binary values (stream JSON carries them as base64)
    record = stream_record("first_registration")
    record["dynamodb"]["NewImage"]["blob"] = {"B": "AAEC"}
    record["dynamodb"]["NewImage"]["blobs"] = {"BS": ["AAEC", "AQID"]}

    response = pipeline.handle({"Records": [record]}, context)

    # Then its event is published like any other
    assert response == {"batchItemFailures": []}
    assert [e["detail-type"] for e in pipeline.published()] == ["Customer Registered"]


def test_session_records_are_ignored_even_without_the_mapping_filter(
    pipeline: Pipeline, context: LambdaContext
) -> None:
    record = stream_record("first_registration")
    record["dynamodb"]["Keys"]["sk"] = {"S": "SESSION"}
    record["dynamodb"]["NewImage"]["sk"] = {"S": "SESSION"}

    response = pipeline.handle({"Records": [record]}, context)

    assert response == {"batchItemFailures": []}
    assert pipeline.published() == []


# -- the local stack's stream poller ----------------------------------------------------------


@pytest.fixture
def local_events(stack: Stack, dynamodb_server: RunningDynamoDB) -> Iterator[LocalEvents]:
    running = start_local_events(
        dynamodb_url=dynamodb_server.url,
        customers_table=stack.customers_table,
        function_environment=local_function_environment(stack),
        region="us-east-1",
        prefix=f"local-{uuid.uuid4().hex[:8]}",
    )
    yield running
    running.stop()


def _wait_for(local_events: LocalEvents, count: int, timeout: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        published = local_events.published()
        if len(published) >= count:
            return published
        time.sleep(0.2)
    return local_events.published()


def test_a_registration_through_the_api_shows_up_on_the_local_events_page(
    stack: Stack, local_events: LocalEvents, lambda_context: LambdaContext
) -> None:
    from fulfillment.registration.handler import lambda_handler as api_handler

    # Given the local events pipeline following the customers table's stream
    token = stack.marketplace.issue_token("new-style")

    # When a buyer registers through the real fulfillment function
    assert api_handler(form_post(token), lambda_context)["statusCode"] == 303

    # Then exactly one Customer Registered event is published (the session item is filtered)
    (event,) = _wait_for(local_events, 1)
    assert event["detail-type"] == "Customer Registered"
    assert event["detail"]["productCode"] == PRODUCT
    assert event["detail"]["customerAWSAccountId"] == "111122223333"
    assert event["detail"]["firstRegistration"] is True
    time.sleep(1)
    assert len(local_events.published()) == 1

    # And the events page lists it, escaped
    page = local_events.page(LocalRequest("GET", EVENTS_PATH, {}, {}, b""))
    assert page.status == 200
    body = page.body.decode()
    assert "Customer Registered" in body
    assert "&quot;productCode&quot;: &quot;" + PRODUCT in body
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
