"""Local subscription lifecycle intake: moto's SQS queue -> the real lifecycle function.

Never deployed. Stands in for what Lambda's SQS event source mapping does in AWS
(infra/lifecycle.py): a daemon thread polls the lifecycle queue (moto, on the same server as
DynamoDB), hands each batch to the lifecycle handler with Lambda's SQS event
shape in a spawned single-worker process (one invocation at a time, module state kept warm,
like an execution environment) and deletes the messages the handler did not report in
`batchItemFailures`. A failed message becomes visible again after the (short, local) visibility
timeout and moves to the dead-letter queue after MAX_RECEIVE_COUNT receives, as in AWS. The
plumbing is shared with local/recovery.py and local/events.py (local/event_sources.py).

The Marketplace stand-in emits notifications into the queue through `send` (its
notification sink) and reads statuses back with `status_of` (its status reader).

    lifecycle = start_local_lifecycle(endpoint_url=..., customers_table=...,
                                      function_environment=..., region="us-east-1")
    stand_in.connect_lifecycle(lifecycle.send, lifecycle.status_of)
    ...
    lifecycle.stop()
"""

from __future__ import annotations

from collections.abc import Mapping

import boto3

from local.event_sources import QueueFunction, local_session
from local.marketplace import TestCustomer

HANDLER = "fulfillment.lifecycle.handler.lambda_handler"


def customer_key(customer: TestCustomer) -> dict[str, dict[str, str]]:
    """The customer item's key (README, "What is stored")."""
    if customer.customer_identifier:
        pk = f"LEGACY#{customer.product_code}#{customer.customer_identifier}"
    else:
        pk = f"LICENSE#{customer.license_arn}"
    return {"pk": {"S": pk}, "sk": {"S": "CUSTOMER"}}


class LocalLifecycle(QueueFunction):
    """A running local lifecycle intake (queue, in_flight(), dead_letters(), stop() as any
    QueueFunction); see start_local_lifecycle."""

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
        self._customers_table = customers_table
        self._dynamodb = session.client("dynamodb", endpoint_url=endpoint_url)
        super().__init__(
            session.client("sqs", endpoint_url=endpoint_url),
            name=f"{prefix}-lifecycle",
            label="local lifecycle",
            handler=handler,
            environment=function_environment,
            region=region,
            function_name="fulfillment-lifecycle-local",
            extra_sys_path=extra_sys_path,
        )

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
    return LocalLifecycle(
        session=local_session(region),
        endpoint_url=endpoint_url,
        customers_table=customers_table,
        function_environment=function_environment,
        region=region,
        prefix=prefix,
        handler=handler,
        extra_sys_path=extra_sys_path or [],
    )


__all__ = ["LocalLifecycle", "customer_key", "start_local_lifecycle"]
