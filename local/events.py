"""Local registration events: moto's DynamoDB stream -> the real publisher -> moto's bus.

Never deployed. Stands in for the publisher's two event source mappings (infra/events.py): a
daemon thread polls the customers table's stream (with the deployed mapping's sk=CUSTOMER
filter) and the publish retry queue, and invokes the publisher with Lambda's event shapes in
an execution environment of its own (local/event_sources.py). EventBridge and SQS are moto's,
on the same server as DynamoDB. A rule on the bus copies every event into an inspection
queue, which the `/_local/events` page reads.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from fulfillment import contract
from local import pages
from local.event_sources import (
    Poller,
    QueueConsumer,
    create_queue,
    lambda_sqs_record,
    local_session,
)
from local.functions import FunctionSpec, Workers
from local.pages import EVENTS_PATH
from local.server import LocalRequest, LocalResponse

__all__ = ["EVENTS_PATH", "LocalEvents", "lambda_sqs_record", "start_local_events"]

# What the deployed mappings use (infra/events.py).
STREAM_BATCH_SIZE = 10
STREAM_RETRY_ATTEMPTS = 3
# Shorter than in AWS so a local retry is seen within seconds.
RETRY_VISIBILITY_SECONDS = 5


def lambda_stream_record(record: Mapping[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """A record from GetRecords in the shape Lambda hands a DynamoDB stream event source."""
    source = record["dynamodb"]
    created = source.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        created = created.timestamp()
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": int(
            created if isinstance(created, int | float) else time.time()
        ),
        "Keys": source["Keys"],
        **{image: source[image] for image in ("NewImage", "OldImage") if image in source},
        "SequenceNumber": source["SequenceNumber"],
        "SizeBytes": source.get("SizeBytes", 0),
        "StreamViewType": source.get("StreamViewType", contract.CUSTOMERS.stream_view_type),
    }
    return {
        "eventID": record.get("eventID") or uuid.uuid4().hex,
        "eventName": record["eventName"],
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }


def _is_customer(record: Mapping[str, Any]) -> bool:
    """The deployed mapping's filter: {"dynamodb": {"Keys": {"sk": {"S": ["CUSTOMER"]}}}}."""
    keys = record.get("dynamodb", {}).get("Keys", {})
    return bool(keys.get(contract.SK) == {"S": contract.CUSTOMER_SK})


class LocalEvents:
    """A running local events pipeline; see start_local_events."""

    def __init__(
        self,
        *,
        endpoint_url: str,
        customers_table: str,
        function_environment: Mapping[str, str],
        region: str,
        prefix: str,
    ) -> None:
        session = local_session(region)
        self._region = region
        self._streams = session.client("dynamodbstreams", endpoint_url=endpoint_url)
        self._events = session.client("events", endpoint_url=endpoint_url)
        self._sqs = session.client("sqs", endpoint_url=endpoint_url)
        self.bus_name = f"{prefix}-registrations"
        with contextlib.suppress(self._events.exceptions.ResourceAlreadyExistsException):
            self._events.create_event_bus(Name=self.bus_name)
        self._retry = QueueConsumer(
            self._sqs,
            name=f"{prefix}-publish-retry",
            region=region,
            visibility_seconds=RETRY_VISIBILITY_SECONDS,
            # The publisher starts below, once its environment (this queue's URL) is known.
            function=lambda event: self._publisher.call(event),
        )
        self._inspection_url, inspection_arn = create_queue(
            self._sqs, f"{prefix}-events-inspection"
        )
        rule = f"{prefix}-inspect-registrations"
        pattern = {"source": [contract.REGISTRATION_EVENT_SOURCE]}
        self._events.put_rule(
            Name=rule, EventBusName=self.bus_name, EventPattern=json.dumps(pattern)
        )
        self._events.put_targets(
            Rule=rule,
            EventBusName=self.bus_name,
            Targets=[{"Id": "inspection", "Arn": inspection_arn}],
        )
        self.environment: dict[str, str] = {
            contract.EVENT_BUS_NAME: self.bus_name,
            contract.PUBLISH_RETRY_QUEUE_URL: self._retry.queue_url,
            "AWS_ENDPOINT_URL_EVENTBRIDGE": endpoint_url,
            "AWS_ENDPOINT_URL_SQS": endpoint_url,
        }
        table = session.client("dynamodb", endpoint_url=endpoint_url).describe_table(
            TableName=customers_table
        )["Table"]
        self._stream_arn: str = table["LatestStreamArn"]
        shards = self._streams.describe_stream(StreamArn=self._stream_arn)["StreamDescription"]
        self._iterators: dict[str, str | None] = {
            shard["ShardId"]: self._streams.get_shard_iterator(
                StreamArn=self._stream_arn, ShardId=shard["ShardId"], ShardIteratorType="LATEST"
            )["ShardIterator"]
            for shard in shards["Shards"]
        }
        self._pending: list[tuple[dict[str, Any], int]] = []  # (record, attempts) to retry
        self._published: list[dict[str, Any]] = []
        self._published_lock = threading.Lock()
        self._publisher = Workers(
            FunctionSpec(contract.PUBLISHER_HANDLER, "fulfillment-publisher-local", 256, 120),
            environment={**function_environment, **self.environment},
        )
        self._poller = Poller("local-events", self._poll_stream, self._retry.poll)

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
        queue = self._pending + [(r, 0) for r in fresh if _is_customer(r)]
        self._pending = []
        while queue:
            batch, queue = queue[:STREAM_BATCH_SIZE], queue[STREAM_BATCH_SIZE:]
            response = self._publisher.call({"Records": [record for record, _ in batch]})
            if response is None:
                failed = {r["dynamodb"]["SequenceNumber"] for r, _ in batch}
            else:
                failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
            for record, attempts in batch:
                sequence = record["dynamodb"]["SequenceNumber"]
                if sequence not in failed:
                    continue
                if attempts + 1 < STREAM_RETRY_ATTEMPTS:
                    self._pending.append((record, attempts + 1))
                else:
                    sys.stderr.write(
                        f"local events: gave up on stream record {sequence} "
                        "(in AWS: stream-failure queue)\n"
                    )

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
        return pages.events_page(self.published(), bus_name=self.bus_name)

    def stop(self) -> None:
        self._poller.stop()
        self._publisher.shutdown()


def start_local_events(
    *,
    dynamodb_url: str,
    customers_table: str,
    function_environment: Mapping[str, str],
    region: str,
    prefix: str = "fulfillment-local",
) -> LocalEvents:
    """Create the bus, the queues and the inspection rule on moto (the server at
    ``dynamodb_url``) and start following the customers table's stream from now on.
    ``function_environment`` is the local stack's (credentials, region, Powertools); the
    publisher's own variables are added (``.environment``)."""
    return LocalEvents(
        endpoint_url=dynamodb_url,
        customers_table=customers_table,
        function_environment=function_environment,
        region=region,
        prefix=prefix,
    )
