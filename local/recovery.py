"""Local registration recovery: moto's recovery queue -> the real recovery processor.

Never deployed. Stands in for the recovery processor's SQS event source mapping
(infra/recovery.py) with the plumbing of local/event_sources.py: each parked registration is
handed over alone, as the deployed mapping's batch size is 1.
"""

from __future__ import annotations

from collections.abc import Mapping

from fulfillment import contract
from local.event_sources import QueueFunction, local_session

# infra/recovery.py's BATCH_SIZE: one parked registration per invocation.
BATCH_SIZE = 1


def start_local_recovery(
    *,
    endpoint_url: str,
    function_environment: Mapping[str, str],
    region: str,
    prefix: str = "fulfillment-local",
) -> QueueFunction:
    """The recovery queue (and its dead-letter queue) on the SQS endpoint at ``endpoint_url``,
    fed to the recovery processor in a worker process; ``function_environment`` must hold
    CUSTOMERS_TABLE_NAME, IDEMPOTENCY_TABLE_NAME and the DynamoDB endpoint."""
    return QueueFunction(
        local_session(region).client("sqs", endpoint_url=endpoint_url),
        name=f"{prefix}-recovery",
        label="local-recovery",
        handler=contract.RECOVERY_HANDLER,
        environment=function_environment,
        region=region,
        function_name="fulfillment-recovery-local",
        batch_size=BATCH_SIZE,
    )
