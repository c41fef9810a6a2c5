"""Local stand-ins for Lambda's SQS event source mappings and the functions they invoke.

Never deployed. Shared by local/recovery.py, local/lifecycle.py and local/events.py:

- `SpawnedFunction` runs one handler in a spawned single-worker process of its own (one
  invocation at a time, module state kept warm, like an execution environment).
- `QueueConsumer` does what a mapping does for one queue: receive a batch, hand it to the
  function in Lambda's SQS event shape and delete the messages the handler did not report in
  `batchItemFailures`. A failed message becomes visible again after the queue's visibility
  timeout and moves to the dead-letter queue after maxReceiveCount receives, as in AWS.
- `Poller` calls polls like `QueueConsumer.poll` from a daemon thread until stopped.
- `QueueFunction` is the three together, for a function whose only trigger is one queue.
"""

from __future__ import annotations

import concurrent.futures
import importlib
import json
import multiprocessing
import os
import sys
import threading
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3

from local.gateway import LambdaContext, prepare_worker_process, run_handler

LAMBDA_ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lambda")
LOCAL_CREDENTIAL = "local"
POLL_SECONDS = 0.3
# What the deployed lifecycle mapping and queues use (infra/lifecycle.py; recovery's
# mapping takes one message per invocation: local/recovery.py passes its own batch size);
# both functions run with 1024 MB and a 20 s timeout.
BATCH_SIZE = 10
MAX_RECEIVE_COUNT = 5
# Shorter than in AWS (120 s) so a local retry is seen within seconds.
VISIBILITY_SECONDS = 3
MEMORY_LIMIT_IN_MB = 1024
TIMEOUT_SECONDS = 20
INVOKE_TIMEOUT_SECONDS = 60


def local_session(region: str) -> boto3.session.Session:
    """A session with the local stack's dummy credentials."""
    return boto3.session.Session(
        aws_access_key_id=LOCAL_CREDENTIAL,
        aws_secret_access_key=LOCAL_CREDENTIAL,
        region_name=region,
    )


# --------------------------------------------------------------------------- worker side


@dataclass(frozen=True)
class _FunctionSpec:
    handler_path: str
    function_name: str
    memory_limit_in_mb: int
    timeout_seconds: float


_spec = _FunctionSpec("", "", 0, 0.0)
_handler: Callable[[dict[str, Any], LambdaContext], Any] | None = None


def _init_worker(environment: dict[str, str], sys_path: list[str], spec: _FunctionSpec) -> None:
    global _spec
    prepare_worker_process(environment, sys_path)
    _spec = spec


def _load_handler() -> Callable[[dict[str, Any], LambdaContext], Any]:
    # Imported on first use, like Lambda's init phase; a failed init is retried next time.
    global _handler
    if _handler is None:
        module_name, _, attribute = _spec.handler_path.rpartition(".")
        _handler = getattr(importlib.import_module(module_name), attribute)
    return _handler


def _invoke(event: dict[str, Any]) -> tuple[bool, Any]:
    """Run the handler once in the worker; (ok, JSON-safe result or the traceback)."""
    context = LambdaContext(
        function_name=_spec.function_name,
        memory_limit_in_mb=_spec.memory_limit_in_mb,
        timeout_seconds=_spec.timeout_seconds,
        log_stream_name=f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}",
    )
    return run_handler(_load_handler, event, context)


# --------------------------------------------------------------------------- caller side


class SpawnedFunction:
    """``handler`` ("pkg.module.func") in a spawned single-worker process with ``environment``;
    a failed invocation is logged as "``label`` failed" with its traceback."""

    def __init__(
        self,
        handler: str,
        *,
        environment: Mapping[str, str],
        label: str,
        function_name: str,
        memory_limit_in_mb: int,
        timeout_seconds: float,
        invoke_timeout_seconds: float,
        extra_sys_path: list[str] | None = None,
    ) -> None:
        self._label = label
        self._invoke_timeout_seconds = invoke_timeout_seconds
        self._executor = concurrent.futures.ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(
                dict(environment),
                [*(extra_sys_path or []), LAMBDA_ROOT],
                _FunctionSpec(handler, function_name, memory_limit_in_mb, timeout_seconds),
            ),
        )

    def invoke(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """The handler's response ({} when it is not an object), or None when it failed."""
        ok, result = self._executor.submit(_invoke, event).result(
            timeout=self._invoke_timeout_seconds
        )
        if not ok:
            sys.stderr.write(f"{self._label} failed\n{result}")
            return None
        return result if isinstance(result, dict) else {}

    def stop(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


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
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return str(url), str(arn)


class QueueConsumer:
    """A queue with its dead-letter queue, fed to ``function`` batch by batch on `poll`."""

    def __init__(
        self,
        sqs: Any,
        *,
        name: str,
        dead_letter_name: str,
        region: str,
        function: Callable[[dict[str, Any]], dict[str, Any] | None],
        visibility_seconds: int = VISIBILITY_SECONDS,
        max_receive_count: int = MAX_RECEIVE_COUNT,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self._sqs = sqs
        self._batch_size = batch_size
        self._region = region
        self._invoke = function
        self.dead_letter_queue_url, self.dead_letter_queue_arn = create_queue(sqs, dead_letter_name)
        self.queue_url, self.queue_arn = create_queue(
            sqs,
            name,
            VisibilityTimeout=str(visibility_seconds),
            RedrivePolicy=json.dumps(
                {
                    "deadLetterTargetArn": self.dead_letter_queue_arn,
                    "maxReceiveCount": max_receive_count,
                }
            ),
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
    ``name``-dead-letters) from a daemon thread, with the settings above (``batch_size``
    messages per invocation, BATCH_SIZE unless given); ``label`` ("local recovery") names the
    thread and the function in logs."""

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
        extra_sys_path: list[str] | None = None,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self._function = SpawnedFunction(
            handler,
            environment=environment,
            label=f"{label}: handler",
            function_name=function_name,
            memory_limit_in_mb=MEMORY_LIMIT_IN_MB,
            timeout_seconds=TIMEOUT_SECONDS,
            invoke_timeout_seconds=INVOKE_TIMEOUT_SECONDS,
            extra_sys_path=extra_sys_path,
        )
        super().__init__(
            sqs,
            name=name,
            dead_letter_name=f"{name}-dead-letters",
            region=region,
            function=self._function.invoke,
            batch_size=batch_size,
        )
        self._poller = Poller(label.replace(" ", "-"), self.poll)

    def stop(self) -> None:
        self._poller.stop()
        self._function.stop()


__all__ = [
    "LAMBDA_ROOT",
    "Poller",
    "QueueConsumer",
    "QueueFunction",
    "SpawnedFunction",
    "create_queue",
    "lambda_sqs_record",
    "local_session",
]
