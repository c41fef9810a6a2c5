"""Local registration recovery: moto's recovery queue -> the real recovery processor.

Never deployed. Stands in for Lambda's SQS event source mapping (infra/recovery.py) the same
way local/lifecycle.py does for the lifecycle queue, and reuses its worker process plumbing:
a daemon thread polls the recovery queue, hands each batch to
`fulfillment.recovery.lambda_handler` in a spawned single-worker process, and deletes the
messages the handler did not report in `batchItemFailures`. A failed message becomes visible
again after the (short, local) visibility timeout and moves to the dead-letter queue after
MAX_RECEIVE_COUNT receives, as in AWS.

    recovery = start_local_recovery(endpoint_url=..., function_environment=..., region=...)
    function_environment["RECOVERY_QUEUE_URL"] = recovery.queue_url
    ...
    recovery.stop()
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import sys
import threading
import traceback
from collections.abc import Mapping

import boto3

from local.events import lambda_sqs_record
from local.lifecycle import _LAMBDA_ROOT, _init_worker, _invoke

HANDLER = "fulfillment.recovery.lambda_handler"
POLL_SECONDS = 0.3
# What the deployed mapping and queue use (infra/recovery.py).
BATCH_SIZE = 10
MAX_RECEIVE_COUNT = 5
# Shorter than in AWS (120 s) so a local retry is seen within seconds.
VISIBILITY_SECONDS = 3
LOCAL_CREDENTIAL = "local"
INVOKE_TIMEOUT_SECONDS = 60


class LocalRecovery:
    """A running local recovery queue and consumer; see start_local_recovery."""

    def __init__(
        self,
        *,
        endpoint_url: str,
        function_environment: Mapping[str, str],
        region: str,
        prefix: str,
    ) -> None:
        session = boto3.session.Session(
            aws_access_key_id=LOCAL_CREDENTIAL,
            aws_secret_access_key=LOCAL_CREDENTIAL,
            region_name=region,
        )
        self._region = region
        self._sqs = session.client("sqs", endpoint_url=endpoint_url)
        self.dead_letter_queue_url, dead_letter_arn = self._queue(f"{prefix}-recovery-dead-letters")
        self.queue_url, self.queue_arn = self._queue(
            f"{prefix}-recovery",
            VisibilityTimeout=str(VISIBILITY_SECONDS),
            RedrivePolicy=json.dumps(
                {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}
            ),
        )
        self.invocations = 0
        self._executor = concurrent.futures.ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(dict(function_environment), [_LAMBDA_ROOT], HANDLER),
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="local-recovery", daemon=True)
        self._thread.start()

    def _queue(self, name: str, **attributes: str) -> tuple[str, str]:
        url = self._sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        return str(url), str(arn)

    def in_flight(self) -> int:
        """Messages on the queue, visible or being processed."""
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(value) for value in attributes.values())

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
            QueueUrl=self.queue_url, MaxNumberOfMessages=BATCH_SIZE, AttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            return
        event = {"Records": [lambda_sqs_record(m, self.queue_arn, self._region) for m in messages]}
        ok, result = self._executor.submit(_invoke, event).result(timeout=INVOKE_TIMEOUT_SECONDS)
        self.invocations += 1
        if not ok:
            sys.stderr.write(f"local recovery: handler failed\n{result}")
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


def start_local_recovery(
    *,
    endpoint_url: str,
    function_environment: Mapping[str, str],
    region: str,
    prefix: str = "fulfillment-local",
) -> LocalRecovery:
    """Create the recovery queue and its dead-letter queue on the SQS endpoint at
    ``endpoint_url`` and start feeding it to the recovery processor in a worker process.
    ``function_environment`` must hold CUSTOMERS_TABLE_NAME and the DynamoDB endpoint."""
    return LocalRecovery(
        endpoint_url=endpoint_url,
        function_environment=function_environment,
        region=region,
        prefix=prefix,
    )


__all__ = ["LocalRecovery", "start_local_recovery"]
