"""Local registration recovery: moto's recovery queue -> the real recovery processor.

Never deployed. Stands in for Lambda's SQS event source mapping (infra/recovery.py) the same
way local/lifecycle.py does for the lifecycle queue, with the same plumbing
(local/event_sources.py): a daemon thread polls the recovery queue, hands each message alone
to `fulfillment.recovery.handler.lambda_handler` in a spawned single-worker process (the deployed
mapping's batch size is 1), and deletes it when the invocation succeeds. A failed message
becomes visible again after the (short, local) visibility timeout and moves to the
dead-letter queue after MAX_RECEIVE_COUNT receives, as in AWS.

    recovery = start_local_recovery(endpoint_url=..., function_environment=..., region=...)
    function_environment["RECOVERY_QUEUE_URL"] = recovery.queue_url
    ...
    recovery.stop()
"""

from __future__ import annotations

from collections.abc import Mapping

from local.event_sources import QueueFunction, local_session

HANDLER = "fulfillment.recovery.handler.lambda_handler"
# infra/recovery.py's BATCH_SIZE: one parked registration per invocation.
BATCH_SIZE = 1


class LocalRecovery(QueueFunction):
    """A running local recovery queue and consumer; see start_local_recovery."""

    def __init__(
        self,
        *,
        endpoint_url: str,
        function_environment: Mapping[str, str],
        region: str,
        prefix: str,
    ) -> None:
        super().__init__(
            local_session(region).client("sqs", endpoint_url=endpoint_url),
            name=f"{prefix}-recovery",
            label="local recovery",
            handler=HANDLER,
            environment=function_environment,
            region=region,
            function_name="fulfillment-recovery-local",
            batch_size=BATCH_SIZE,
        )


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
