"""Registration recovery: the queue that keeps resolved registrations whose writes failed, and
the processor that replays them into the customers table.

When the fulfillment function cannot write a session or customer after ResolveCustomer
succeeded (DynamoDB throttling or outage beyond retries, or no time left), it sends the
resolved registration (never the token) to this queue and tells the buyer it is finishing the
set-up (202). The processor (``fulfillment.recovery``) writes both items idempotently, one
message per invocation, so a failure is that message's alone; a message that fails
MAX_RECEIVE_COUNT times waits in the dead-letter queue, which is alarmed: a paying customer
is not recorded until it is redriven.
Alarms live in infra/monitoring.py (``Monitoring.monitor_recovery``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IConstruct

from fulfillment import contract
from infra.api import FunctionSpec, lambda_function
from infra.nag import RUNTIME_REASON, Acknowledgement, acknowledge, default_policy
from infra.queues import encrypted_queue

# What the fulfillment function may do with the queue: send, nothing else.
SEND_ACTIONS = ("sqs:SendMessage",)
# Exactly the processor's own calls: PutItem (session, conditional) and UpdateItem (customer,
# conditional) on the customers table, and the fold registration makes (infra/api.py): GetItem,
# then Update + Delete + Put in one transaction. The SQS event source adds its own grant.
CUSTOMERS_TABLE_ACTIONS = (
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
)
# And UpdateItem (conditional) on the idempotency table: it completes the token's record with
# the parked answer when the fulfillment function could not save it.
IDEMPOTENCY_TABLE_ACTIONS = ("dynamodb:UpdateItem",)

# infra/api.py's function: 20 s timeout. SQS wants the visibility timeout >= 6x that.
FUNCTION_TIMEOUT_SECONDS = 20
VISIBILITY_TIMEOUT = Duration.seconds(6 * FUNCTION_TIMEOUT_SECONDS)
MAX_RECEIVE_COUNT = 5
# One message per invocation: a failed replay fails its invocation and no other message's,
# without a partial batch response (the processor raises; docs/decisions.md, "Where nobody
# waits, the library").
# The queue only fills while DynamoDB fails, so invocations, not batches, are what it costs.
# No batching window: a buyer may be waiting to continue to the sign-up page.
BATCH_SIZE = 1

# Alarm thresholds: a healthy recovery queue is empty within seconds.
OLDEST_MESSAGE_AGE = Duration.minutes(15)


def recovery_environment(
    table: dynamodb.ITable, idempotency_table: dynamodb.ITable
) -> dict[str, str]:
    """The processor's own settings variables (fulfillment.recovery.settings.ENVIRONMENT_KEYS)."""
    return {
        contract.CUSTOMERS_TABLE_NAME: table.table_name,
        contract.IDEMPOTENCY_TABLE_NAME: idempotency_table.table_name,
    }


class RegistrationRecovery(Construct):
    """Recovery queue (+ DLQ) -> recovery processor. The fulfillment function is
    ``connect``ed; the alarms are added by the stack through Monitoring.monitor_recovery."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        table: dynamodb.ITable,
        idempotency_table: dynamodb.ITable,
        code_dir: Path,
        environment_extra: Mapping[str, str],
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        self.acknowledgements: list[Acknowledgement] = []

        self.dead_letter_queue = encrypted_queue(self, "DeadLetterQueue")
        self.queue = encrypted_queue(
            self,
            "Queue",
            visibility_timeout=VISIBILITY_TIMEOUT,
            dead_letter_queue=sqs.DeadLetterQueue(
                max_receive_count=MAX_RECEIVE_COUNT, queue=self.dead_letter_queue
            ),
        )
        self.function = lambda_function(
            self,
            FunctionSpec(
                construct_prefix="Recovery",
                handler=contract.RECOVERY_HANDLER,
                description="Replays registrations parked on the recovery queue",
                role_description="recovery function: writes sessions and customers",
                environment={
                    **recovery_environment(table, idempotency_table),
                    **environment_extra,
                },
                statements=[
                    iam.PolicyStatement(
                        actions=list(CUSTOMERS_TABLE_ACTIONS), resources=[table.table_arn]
                    ),
                    iam.PolicyStatement(
                        actions=list(IDEMPOTENCY_TABLE_ACTIONS),
                        resources=[idempotency_table.table_arn],
                    ),
                ],
            ),
            code=lambda_.Code.from_asset(str(code_dir)),
            retention=log_retention,
        )
        self.function.add_event_source(sources.SqsEventSource(self.queue, batch_size=BATCH_SIZE))
        policy = default_policy(self.function)
        self._acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray's PutTraceSegments/PutTelemetryRecords (active tracing) require '*'; the "
            "DynamoDB actions are scoped to the customers and idempotency tables.",
        )
        self._acknowledge(
            self.function,
            "AwsSolutions-L1",
            RUNTIME_REASON,
        )

    def connect(self, function: lambda_.Function) -> None:
        """Let the fulfillment function park registrations here: its RECOVERY_QUEUE_URL
        setting, and sqs:SendMessage on this queue only."""
        function.add_environment(contract.RECOVERY_QUEUE_URL, self.queue.queue_url)
        role = function.role
        assert role is not None
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=list(SEND_ACTIONS), resources=[self.queue.queue_arn])
        )

    def _acknowledge(self, construct: IConstruct, rule_id: str, reason: str) -> None:
        self.acknowledgements.append(acknowledge(construct, rule_id, reason))
