"""Local subscription lifecycle intake: moto's SQS queue -> the real lifecycle function.

Never deployed. Stands in for what Lambda's SQS event source mapping does in AWS
(infra/lifecycle.py): a daemon thread polls the lifecycle queue (moto, on the same server as
DynamoDB), hands each batch to `fulfillment.lifecycle.lambda_handler` with Lambda's SQS event
shape in a spawned single-worker process (one invocation at a time, module state kept warm,
like an execution environment) and deletes the messages the handler did not report in
`batchItemFailures`. A failed message becomes visible again after the (short, local) visibility
timeout and moves to the dead-letter queue after MAX_RECEIVE_COUNT receives, as in AWS.

The Marketplace stand-in emits notifications into the queue through `send` (its
notification sink) and reads statuses back with `status_of` (its status reader).

    lifecycle = start_local_lifecycle(endpoint_url=..., customers_table=...,
                                      function_environment=..., region="us-east-1")
    stand_in.connect_lifecycle(lifecycle.send, lifecycle.status_of)
    ...
    lifecycle.stop()
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
from datetime import UTC, datetime
from typing import Any

import boto3

from local.events import lambda_sqs_record
from local.gateway import LambdaContext
from local.marketplace import TestCustomer

HANDLER = "fulfillment.lifecycle.lambda_handler"
POLL_SECONDS = 0.3
# What the deployed mapping and queue use (infra/lifecycle.py).
BATCH_SIZE = 10
MAX_RECEIVE_COUNT = 5
# Shorter than in AWS (120 s) so a local retry is seen within seconds.
VISIBILITY_SECONDS = 3
LOCAL_CREDENTIAL = "local"
INVOKE_TIMEOUT_SECONDS = 60
_LAMBDA_ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lambda")


# --------------------------------------------------------------------------- worker side

_handler: Callable[[dict[str, Any], LambdaContext], Any] | None = None


def _init_worker(environment: dict[str, str], sys_path: list[str], handler: str) -> None:
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(line_buffering=True)
    for entry in reversed(sys_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    os.environ.update(environment)
    os.environ["LOCAL_LIFECYCLE_HANDLER"] = handler


def _invoke(event: dict[str, Any]) -> tuple[bool, Any]:
    """Run the handler once in the worker; (ok, JSON-safe result or the traceback)."""
    global _handler
    context = LambdaContext(
        function_name="fulfillment-lifecycle-local",
        memory_limit_in_mb=1024,
        timeout_seconds=20,
        log_stream_name=f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}",
    )
    try:
        if _handler is None:
            module_name, _, attribute = os.environ["LOCAL_LIFECYCLE_HANDLER"].rpartition(".")
            _handler = getattr(importlib.import_module(module_name), attribute)
        result = _handler(event, context)
        return True, json.loads(json.dumps(result))
    except Exception:
        return False, traceback.format_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


# --------------------------------------------------------------------------- the poller


def customer_key(customer: TestCustomer) -> dict[str, dict[str, str]]:
    """The customer item's key (README, "What is stored")."""
    if customer.customer_identifier:
        pk = f"LEGACY#{customer.product_code}#{customer.customer_identifier}"
    else:
        pk = f"LICENSE#{customer.license_arn}"
    return {"pk": {"S": pk}, "sk": {"S": "CUSTOMER"}}


class LocalLifecycle:
    """A running local lifecycle intake; see start_local_lifecycle."""

    def __init__(
        self,
        *,
        session: boto3.session.Session,
        endpoint_url: str,
        customers_table: str,
        function_environment: Mapping[str, str],
        region: str,
        prefix: str,
        handler: str,
        extra_sys_path: list[str],
    ) -> None:
        self._region = region
        self._customers_table = customers_table
        self._sqs = session.client("sqs", endpoint_url=endpoint_url)
        self._dynamodb = session.client("dynamodb", endpoint_url=endpoint_url)
        self.dead_letter_queue_url, self.dead_letter_queue_arn = self._queue(
            f"{prefix}-lifecycle-dead-letters"
        )
        self.queue_url, self.queue_arn = self._queue(
            f"{prefix}-lifecycle",
            VisibilityTimeout=str(VISIBILITY_SECONDS),
            RedrivePolicy=json.dumps(
                {
                    "deadLetterTargetArn": self.dead_letter_queue_arn,
                    "maxReceiveCount": MAX_RECEIVE_COUNT,
                }
            ),
        )
        self.invocations = 0
        self._executor = concurrent.futures.ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(dict(function_environment), [*extra_sys_path, _LAMBDA_ROOT], handler),
        )
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._thread = threading.Thread(target=self._run, name="local-lifecycle", daemon=True)
        self._thread.start()

    def _queue(self, name: str, **attributes: str) -> tuple[str, str]:
        url = self._sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        return str(url), str(arn)

    # -- the stand-in's callbacks ----------------------------------------------------------

    def send(self, body: str) -> None:
        """Put one notification body on the queue (as EventBridge or SNS would)."""
        self._sqs.send_message(QueueUrl=self.queue_url, MessageBody=body)

    def status_of(self, customer: TestCustomer) -> str | None:
        """The customer's status in the customers table, or None without an item."""
        item = self._dynamodb.get_item(
            TableName=self._customers_table, Key=customer_key(customer), ConsistentRead=True
        ).get("Item")
        status = (item or {}).get("status", {}).get("S")
        return str(status) if status is not None else None

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

    # -- polling ---------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            try:
                self._poll()
            except Exception:
                if self._stop.is_set():
                    return
                traceback.print_exc()

    def _poll(self) -> None:
        messages = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=BATCH_SIZE,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return
        event = {"Records": [lambda_sqs_record(m, self.queue_arn, self._region) for m in messages]}
        ok, result = self._executor.submit(_invoke, event).result(timeout=INVOKE_TIMEOUT_SECONDS)
        self.invocations += 1
        if not ok:
            # As in AWS: a failed invocation leaves every message to become visible again.
            sys.stderr.write(f"local lifecycle: handler failed\n{result}")
            return
        failures = result.get("batchItemFailures", []) if isinstance(result, dict) else []
        failed = {f.get("itemIdentifier") for f in failures}
        for message in messages:
            if message["MessageId"] not in failed:
                self._sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._executor.shutdown(wait=True, cancel_futures=True)


def start_local_lifecycle(
    *,
    endpoint_url: str,
    customers_table: str,
    function_environment: Mapping[str, str],
    region: str,
    prefix: str = "fulfillment-local",
    handler: str = HANDLER,
    extra_sys_path: list[str] | None = None,
) -> LocalLifecycle:
    """Create the lifecycle queue and its dead-letter queue on moto (the server at
    ``endpoint_url``) and start feeding it to ``handler`` in a worker process.

    ``function_environment`` must hold the function's settings and endpoints (the local stack
    adds AWS_ENDPOINT_URL_MARKETPLACE_ENTITLEMENT_SERVICE for the stand-in's GetEntitlements).
    """
    session = boto3.session.Session(
        aws_access_key_id=LOCAL_CREDENTIAL,
        aws_secret_access_key=LOCAL_CREDENTIAL,
        region_name=region,
    )
    return LocalLifecycle(
        session=session,
        endpoint_url=endpoint_url,
        customers_table=customers_table,
        function_environment=function_environment,
        region=region,
        prefix=prefix,
        handler=handler,
        extra_sys_path=extra_sys_path or [],
    )


__all__ = ["LocalLifecycle", "customer_key", "start_local_lifecycle"]
