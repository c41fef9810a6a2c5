"""Local registration events: moto's DynamoDB stream -> the real publisher -> moto's bus.

Never deployed. Stands in for what Lambda does in AWS with the publisher's two event source
mappings: a daemon thread polls the customers table's stream (same sk=CUSTOMER filter as the
deployed mapping) and the publish retry queue, and invokes the publisher
with the exact Lambda event shapes in a spawned worker process of its own (one invocation at a
time, module state kept warm, like an execution environment; the plumbing is shared with the
other local consumers in local/event_sources.py). EventBridge and SQS are moto's, on the same
server as DynamoDB. A rule on the bus copies every event into an inspection queue, which the
`/_local/events` page reads.

    events = start_local_events(dynamodb_url=..., customers_table=..., function_environment=...,
                                region="us-east-1")
    local_pages["/_local/events"] = events.page
    ...
    events.stop()
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import json
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from local.event_sources import (
    Poller,
    QueueConsumer,
    SpawnedFunction,
    create_queue,
    lambda_sqs_record,
    local_session,
)
from local.gateway import LocalRequest, LocalResponse

HANDLER = "fulfillment.events.handler.lambda_handler"
EVENTS_PATH = "/_local/events"
SOURCE = "fulfillment.registration"
CUSTOMER_SK = "CUSTOMER"
# What the deployed mappings use (infra/events.py).
STREAM_BATCH_SIZE = 10
QUEUE_BATCH_SIZE = 10
MAX_RECEIVE_COUNT = 5
# Shorter than in AWS so a local retry is seen within seconds.
RETRY_VISIBILITY_SECONDS = 5
STREAM_RETRY_ATTEMPTS = 3
INVOKE_TIMEOUT_SECONDS = 150

_CSS = (
    "body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f2f3f3;color:#16191f}"
    "header{background:#232f3e;color:#fff;padding:1rem 2rem}header h1{margin:0;font-size:1.4rem}"
    "main{max-width:60rem;margin:2rem auto;padding:1.5rem;background:#fff;border-radius:8px}"
    "article{border-top:1px solid #d5dbdb;padding:.5rem 0}h2{font-size:1.1rem;margin:.3rem 0}"
    "pre{background:#f2f3f3;padding:.6rem;overflow-x:auto;font-size:.85rem}"
    ".note{color:#545b64;font-size:.9rem}"
)
_CSP = (
    "default-src 'none'; "
    f"style-src 'sha256-{base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()}'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


# --------------------------------------------------------------------------- event shapes


def _epoch_seconds(value: object) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    return time.time()


def lambda_stream_record(record: Mapping[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """A record from GetRecords in the shape Lambda hands a DynamoDB stream event source."""
    source = record["dynamodb"]
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": int(
            _epoch_seconds(source.get("ApproximateCreationDateTime"))
        ),
        "Keys": source["Keys"],
    }
    for image in ("NewImage", "OldImage"):
        if image in source:
            dynamodb[image] = source[image]
    dynamodb["SequenceNumber"] = source["SequenceNumber"]
    dynamodb["SizeBytes"] = source.get("SizeBytes", 0)
    dynamodb["StreamViewType"] = source.get("StreamViewType", "NEW_AND_OLD_IMAGES")
    return {
        "eventID": record.get("eventID") or uuid.uuid4().hex,
        "eventName": record["eventName"],
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }


def matches_customer_filter(record: Mapping[str, Any]) -> bool:
    """The deployed mapping's filter: {"dynamodb": {"Keys": {"sk": {"S": ["CUSTOMER"]}}}}."""
    return bool(record.get("dynamodb", {}).get("Keys", {}).get("sk") == {"S": CUSTOMER_SK})


# --------------------------------------------------------------------------- the poller


class LocalEvents:
    """A running local events pipeline; see start_local_events."""

    def __init__(
        self,
        *,
        session: boto3.session.Session,
        endpoint_url: str,
        customers_table: str,
        function_environment: Mapping[str, str],
        region: str,
        prefix: str,
    ) -> None:
        self._region = region
        self._dynamodb = session.client("dynamodb", endpoint_url=endpoint_url)
        self._streams = session.client("dynamodbstreams", endpoint_url=endpoint_url)
        self._events = session.client("events", endpoint_url=endpoint_url)
        self._sqs = session.client("sqs", endpoint_url=endpoint_url)
        self.bus_name = f"{prefix}-registrations"
        self._create_bus_and_queues(prefix)
        self.environment: dict[str, str] = {
            "EVENT_BUS_NAME": self.bus_name,
            "PUBLISH_RETRY_QUEUE_URL": self.retry_queue_url,
            "AWS_ENDPOINT_URL_EVENTBRIDGE": endpoint_url,
            "AWS_ENDPOINT_URL_SQS": endpoint_url,
        }
        table = self._dynamodb.describe_table(TableName=customers_table)["Table"]
        self._stream_arn: str = table["LatestStreamArn"]
        self._iterators = {
            shard["ShardId"]: self._streams.get_shard_iterator(
                StreamArn=self._stream_arn, ShardId=shard["ShardId"], ShardIteratorType="LATEST"
            )["ShardIterator"]
            for shard in self._streams.describe_stream(StreamArn=self._stream_arn)[
                "StreamDescription"
            ]["Shards"]
        }
        self._pending: list[tuple[dict[str, Any], int]] = []  # (record, attempts) to retry
        self._published: list[dict[str, Any]] = []
        self._published_lock = threading.Lock()
        self._publisher = SpawnedFunction(
            HANDLER,
            environment={**function_environment, **self.environment},
            label="local events: publisher",
            function_name="fulfillment-publisher-local",
            memory_limit_in_mb=256,
            timeout_seconds=120,
            invoke_timeout_seconds=INVOKE_TIMEOUT_SECONDS,
        )
        self._poller = Poller("local-events", self._poll_stream, self._retry.poll)

    # -- setup -----------------------------------------------------------------------------

    def _create_bus_and_queues(self, prefix: str) -> None:
        with contextlib.suppress(self._events.exceptions.ResourceAlreadyExistsException):
            self._events.create_event_bus(Name=self.bus_name)
        self._retry = QueueConsumer(
            self._sqs,
            name=f"{prefix}-publish-retry",
            dead_letter_name=f"{prefix}-publish-dead-letters",
            visibility_seconds=RETRY_VISIBILITY_SECONDS,
            max_receive_count=MAX_RECEIVE_COUNT,
            batch_size=QUEUE_BATCH_SIZE,
            region=self._region,
            # The publisher is spawned later, once its environment (this queue's URL) is known.
            function=lambda event: self._publisher.invoke(event),
        )
        self.retry_queue_url = self._retry.queue_url
        self._inspection_url, inspection_arn = create_queue(
            self._sqs, f"{prefix}-events-inspection"
        )
        rule = f"{prefix}-inspect-registrations"
        self._events.put_rule(
            Name=rule,
            EventBusName=self.bus_name,
            EventPattern=json.dumps({"source": [SOURCE]}),
            State="ENABLED",
        )
        self._events.put_targets(
            Rule=rule,
            EventBusName=self.bus_name,
            Targets=[{"Id": "inspection", "Arn": inspection_arn}],
        )

    # -- polling ---------------------------------------------------------------------------

    def _poll_stream(self) -> None:
        fresh: list[dict[str, Any]] = []
        for shard_id, iterator in list(self._iterators.items()):
            if iterator is None:
                continue
            answer = self._streams.get_records(ShardIterator=iterator, Limit=1000)
            self._iterators[shard_id] = answer.get("NextShardIterator")
            fresh += [
                lambda_stream_record(r, self._stream_arn, self._region)
                for r in answer.get("Records", [])
            ]
        queue = self._pending + [(r, 0) for r in fresh if matches_customer_filter(r)]
        self._pending = []
        while queue:
            batch, queue = queue[:STREAM_BATCH_SIZE], queue[STREAM_BATCH_SIZE:]
            response = self._publisher.invoke({"Records": [record for record, _ in batch]})
            if response is None:
                failed = {r["dynamodb"]["SequenceNumber"] for r, _ in batch}
            else:
                failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
            for record, attempts in batch:
                if record["dynamodb"]["SequenceNumber"] not in failed:
                    continue
                if attempts + 1 < STREAM_RETRY_ATTEMPTS:
                    self._pending.append((record, attempts + 1))
                else:
                    sys.stderr.write(
                        "local events: gave up on stream record "
                        f"{record['dynamodb']['SequenceNumber']} (in AWS: stream-failure queue)\n"
                    )

    # -- inspection ------------------------------------------------------------------------

    def published(self) -> list[dict[str, Any]]:
        """Every event the bus delivered so far (EventBridge's envelope), oldest first."""
        with self._published_lock:
            while True:
                try:
                    messages = self._sqs.receive_message(
                        QueueUrl=self._inspection_url, MaxNumberOfMessages=10
                    ).get("Messages", [])
                except (BotoCoreError, ClientError):
                    break
                if not messages:
                    break
                for message in messages:
                    self._published.append(json.loads(message["Body"]))
                    self._sqs.delete_message(
                        QueueUrl=self._inspection_url, ReceiptHandle=message["ReceiptHandle"]
                    )
            return list(self._published)

    def page(self, request: LocalRequest) -> LocalResponse:
        """The `/_local/events` page: every published event, newest first."""
        return LocalResponse(
            200,
            {
                "Content-Type": "text/html; charset=utf-8",
                "Content-Security-Policy": _CSP,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
                "Cache-Control": "no-store",
            },
            render_events_page(self.published(), bus_name=self.bus_name),
        )

    def stop(self) -> None:
        self._poller.stop()
        self._publisher.stop()


def render_events_page(published: list[dict[str, Any]], *, bus_name: str) -> bytes:
    """The events page; every value escaped with html.escape."""
    escape = html.escape
    items = []
    for event in reversed(published):
        detail = json.dumps(event.get("detail"), indent=2, sort_keys=True)
        items.append(
            "<article>"
            f"<h2>{escape(str(event.get('detail-type', '')))}</h2>"
            f'<p class="note">{escape(str(event.get("time", "")))} &middot; '
            f"source {escape(str(event.get('source', '')))} &middot; "
            f"id {escape(str(event.get('id', '')))}</p>"
            f"<pre>{escape(detail)}</pre>"
            "</article>"
        )
    body = "".join(items) or "<p>No events yet. Register a customer to see one here.</p>"
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Published events</title><style>{_CSS}</style></head><body>"
        "<header><h1>Published registration events (local)</h1></header><main>"
        f'<p class="note">What the bus <code>{escape(bus_name)}</code> delivered, newest first '
        f"({len(published)} so far).</p>{body}</main></body></html>"
    )
    return document.encode()


def start_local_events(
    *,
    dynamodb_url: str,
    customers_table: str,
    function_environment: Mapping[str, str],
    region: str,
    prefix: str = "fulfillment-local",
) -> LocalEvents:
    """Create the bus, the queues and the inspection rule on moto (the server at
    ``dynamodb_url``) and start polling the customers table's stream from now on.

    ``function_environment`` is the function environment of the local stack (credentials,
    region, Powertools settings); the publisher's own variables are added (``.environment``).
    """
    return LocalEvents(
        session=local_session(region),
        endpoint_url=dynamodb_url,
        customers_table=customers_table,
        function_environment=function_environment,
        region=region,
        prefix=prefix,
    )


__all__ = [
    "EVENTS_PATH",
    "LocalEvents",
    "lambda_sqs_record",
    "lambda_stream_record",
    "matches_customer_filter",
    "render_events_page",
    "start_local_events",
]
