"""Local stand-ins for Lambda's event source mappings and the functions they invoke.

Never deployed. Shared by local/events.py, local/lifecycle.py and local/recovery.py:

- `QueueConsumer` does what a mapping does for one queue: receive a batch, hand it to the
  function in Lambda's SQS event shape and delete the messages the handler did not report in
  `batchItemFailures`. A failed message becomes visible again after the queue's visibility
  timeout and moves to the dead-letter queue after maxReceiveCount receives, as in AWS.
- `Poller` calls polls like `QueueConsumer.poll` from a daemon thread until stopped.
- `QueueFunction` is both with the function in an execution environment of its own
  (local/functions.py), for a function whose only trigger is one queue.
"""

from __future__ import annotations

import json
import threading
import traceback
from collections.abc import Callable, Mapping
from typing import Any

import boto3

from local.functions import FunctionSpec, Workers

LOCAL_CREDENTIAL = "local"
POLL_SECONDS = 0.3
# What the deployed lifecycle mapping and queues use (infra/lifecycle.py; recovery's mapping
# takes one message per invocation: local/recovery.py passes its own batch size).
BATCH_SIZE = 10
MAX_RECEIVE_COUNT = 5
# Shorter than in AWS (120 s) so a local retry is seen within seconds.
VISIBILITY_SECONDS = 3
# Both queue functions run with 1024 MB and a 20 s timeout.
MEMORY_LIMIT_IN_MB = 1024
TIMEOUT_SECONDS = 20

Invoke = Callable[[dict[str, Any]], "dict[str, Any] | None"]


def local_session(region: str) -> boto3.session.Session:
    """A session with the local stack's dummy credentials."""
    return boto3.session.Session(
        aws_access_key_id=LOCAL_CREDENTIAL,
        aws_secret_access_key=LOCAL_CREDENTIAL,
        region_name=region,
    )


def lambda_sqs_record(message: Mapping[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """A ReceiveMessage message in the shape Lambda hands an SQS event source."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {},
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def create_queue(sqs: Any, name: str, **attributes: str) -> tuple[str, str]:
    """Create (or find) the queue ``name``; its URL and ARN."""
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    return str(url), str(attributes["QueueArn"])


class QueueConsumer:
    """A queue with its dead-letter queue, fed to ``function`` batch by batch on `poll`."""

    def __init__(
        self,
        sqs: Any,
        *,
        name: str,
        region: str,
        function: Invoke,
        visibility_seconds: int = VISIBILITY_SECONDS,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self._sqs = sqs
        self._batch_size = batch_size
        self._region = region
        self._invoke = function
        self.dead_letter_queue_url, dead_letter_arn = create_queue(sqs, f"{name}-dead-letters")
        redrive = {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}
        self.queue_url, self.queue_arn = create_queue(
            sqs,
            name,
            VisibilityTimeout=str(visibility_seconds),
            RedrivePolicy=json.dumps(redrive),
        )
        self.invocations = 0

    def in_flight(self) -> int:
        """Messages on the queue, visible or being processed."""
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(value) for value in attributes.values())

    def dead_letters(self) -> list[str]:
        """Bodies waiting in the dead-letter queue (left there)."""
        messages = self._sqs.receive_message(
            QueueUrl=self.dead_letter_queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0
        ).get("Messages", [])
        return [m["Body"] for m in messages]

    def poll(self) -> None:
        """Receive one batch, invoke the function with it, delete what it did not fail."""
        messages = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self._batch_size,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return
        event = {"Records": [lambda_sqs_record(m, self.queue_arn, self._region) for m in messages]}
        response = self._invoke(event)
        self.invocations += 1
        if response is None:
            return  # as in AWS: a failed invocation leaves every message to become visible again
        failed = {f.get("itemIdentifier") for f in response.get("batchItemFailures", [])}
        for message in messages:
            if message["MessageId"] not in failed:
                self._sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )


class Poller:
    """A daemon thread named ``name`` calling each of ``polls`` every POLL_SECONDS."""

    def __init__(self, name: str, *polls: Callable[[], None]) -> None:
        self._polls = polls
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            try:
                for poll in self._polls:
                    poll()
            except Exception:
                if self._stop.is_set():
                    return
                traceback.print_exc()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class QueueFunction(QueueConsumer):
    """``handler`` in its own spawned process, fed by a new queue ``name`` (dead letters in
    ``name``-dead-letters) from a daemon thread named ``label`` ("local-recovery")."""

    def __init__(
        self,
        sqs: Any,
        *,
        name: str,
        label: str,
        handler: str,
        environment: Mapping[str, str],
        region: str,
        function_name: str,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        spec = FunctionSpec(handler, function_name, MEMORY_LIMIT_IN_MB, TIMEOUT_SECONDS)
        self._function = Workers(spec, environment=environment)
        super().__init__(
            sqs, name=name, region=region, function=self._function.call, batch_size=batch_size
        )
        self._poller = Poller(label, self.poll)

    def stop(self) -> None:
        self._poller.stop()
        self._function.shutdown()
