"""Local subscription lifecycle intake: moto's SQS queue -> the real lifecycle function.

Never deployed. Stands in for the lifecycle function's SQS event source mapping
(infra/lifecycle.py) with the plumbing of local/event_sources.py. The Marketplace stand-in puts
its notifications on the queue through `send` and reads statuses back with `status_of`.
"""

from __future__ import annotations

from collections.abc import Mapping

from fulfillment import contract
from fulfillment.customers.models import ResolvedCustomer
from local.event_sources import QueueFunction, local_session
from local.marketplace import TestCustomer


def customer_key(customer: TestCustomer) -> dict[str, dict[str, str]]:
    """The customers table key of a test customer's item, as the function derives it."""
    resolved = ResolvedCustomer(
        customer.product_code,
        customer.customer_aws_account_id,
        customer.license_arn,
        customer.customer_identifier or None,
        customer.agreement_id,
    )
    return {
        contract.PK: {"S": resolved.customer_key},
        contract.SK: {"S": contract.CUSTOMER_SK},
    }


class LocalLifecycle(QueueFunction):
    """The lifecycle queue and its consumer (queue_url, in_flight(), dead_letters(), stop())."""

    def __init__(
        self,
        *,
        endpoint_url: str,
        customers_table: str,
        function_environment: Mapping[str, str],
        region: str,
        prefix: str = "fulfillment-local",
    ) -> None:
        session = local_session(region)
        self._customers_table = customers_table
        self._dynamodb = session.client("dynamodb", endpoint_url=endpoint_url)
        super().__init__(
            session.client("sqs", endpoint_url=endpoint_url),
            name=f"{prefix}-lifecycle",
            label="local-lifecycle",
            handler=contract.LIFECYCLE_HANDLER,
            environment=function_environment,
            region=region,
            function_name="fulfillment-lifecycle-local",
        )

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
