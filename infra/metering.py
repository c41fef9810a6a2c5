"""Metering (docs/metering.md): the usage table, `POST /usage` on the seller's hand-off API,
and the hourly run on a schedule. Built only when context `meteringDimensions` lists any.

Least privilege, exactly the calls the functions make (fulfillment/metering/store.py):
- intake: TransactWriteItems of a Put and Updates on the usage table, ConditionChecks on the
  usage and customers tables; BatchGetItem of sessions on the customers table;
- run: Query, BatchGetItem, PutItem, BatchWriteItem on the usage table; Query of the
  customers table's by_status index, BatchGetItem of customers;
  aws-marketplace:BatchMeterUsage (no resource ARNs exist for it).
The run has reserved concurrency 1 (two runs never send one hour at once), and the schedule
retries a failed invocation twice, then keeps its event on a dead-letter queue.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct, IConstruct

from fulfillment import contract
from infra.api import FunctionSpec, lambda_function
from infra.nag import RUNTIME_REASON, Acknowledgement, acknowledge, default_policy
from infra.queues import encrypted_queue
from infra.tables import usage_table

USAGE_RESOURCE = "usage"
# A few minutes past each hour: the closed hour's late reports have arrived.
SCHEDULE = events.Schedule.cron(minute="5")
RUN_TIMEOUT_SECONDS = 300
INTAKE_TABLE_ACTIONS = ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem")
INTAKE_CUSTOMER_ACTIONS = ("dynamodb:ConditionCheckItem", "dynamodb:BatchGetItem")
RUN_TABLE_ACTIONS = (
    "dynamodb:Query",
    "dynamodb:BatchGetItem",
    "dynamodb:PutItem",
    "dynamodb:BatchWriteItem",
)
RUN_CUSTOMER_ACTIONS = ("dynamodb:BatchGetItem",)
METERING_ACTIONS = ("aws-marketplace:BatchMeterUsage",)


def metering_environment(
    customers: dynamodb.ITable,
    usage: dynamodb.ITable,
    product_codes: Sequence[str],
    dimensions: Sequence[str],
    dry_run: bool,
) -> dict[str, str]:
    """The metering functions' variables (fulfillment.metering.settings)."""
    return {
        contract.CUSTOMERS_TABLE_NAME: customers.table_name,
        contract.USAGE_TABLE_NAME: usage.table_name,
        contract.PRODUCT_CODES: ",".join(product_codes),
        contract.METERING_DIMENSIONS: ",".join(dimensions),
        contract.METERING_DRY_RUN: "true" if dry_run else "false",
    }


class Metering(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        customers: dynamodb.ITable,
        handoff_api: apigw.RestApi,
        product_codes: Sequence[str],
        dimensions: Sequence[str],
        dry_run: bool,
        code_dir: Path,
        environment_extra: Mapping[str, str],
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        self.acknowledgements: list[Acknowledgement] = []
        self.table = usage_table(self, "Usage")
        environment = {
            **metering_environment(customers, self.table, product_codes, dimensions, dry_run),
            **environment_extra,
        }
        code = lambda_.Code.from_asset(str(code_dir))
        self.intake_function = lambda_function(
            self,
            FunctionSpec(
                construct_prefix="UsageIntake",
                handler=contract.USAGE_HANDLER,
                description="Metering: POST /usage (IAM), usage into hourly buckets",
                role_description="usage intake: usage table writes, customer checks",
                environment=environment,
                statements=[
                    iam.PolicyStatement(
                        actions=list(INTAKE_TABLE_ACTIONS), resources=[self.table.table_arn]
                    ),
                    iam.PolicyStatement(
                        actions=list(INTAKE_CUSTOMER_ACTIONS), resources=[customers.table_arn]
                    ),
                ],
            ),
            code=code,
            retention=log_retention,
        )
        self.run_function = lambda_function(
            self,
            FunctionSpec(
                construct_prefix="MeteringRun",
                handler=contract.METERING_HANDLER,
                description="Metering: the hourly BatchMeterUsage run",
                role_description="metering run: usage table, subscribed customers, BatchMeterUsage",
                environment=environment,
                statements=[
                    iam.PolicyStatement(
                        actions=list(RUN_TABLE_ACTIONS), resources=[self.table.table_arn]
                    ),
                    iam.PolicyStatement(
                        actions=["dynamodb:Query"],
                        resources=[f"{customers.table_arn}/index/{contract.BY_STATUS}"],
                    ),
                    iam.PolicyStatement(
                        actions=list(RUN_CUSTOMER_ACTIONS), resources=[customers.table_arn]
                    ),
                    iam.PolicyStatement(actions=list(METERING_ACTIONS), resources=["*"]),
                ],
                timeout_seconds=RUN_TIMEOUT_SECONDS,
            ),
            code=code,
            retention=log_retention,
        )
        run = self.run_function.node.default_child
        assert isinstance(run, lambda_.CfnFunction)
        run.reserved_concurrent_executions = 1
        self.dead_letter_queue = encrypted_queue(self, "ScheduleDeadLetters")
        self.schedule = events.Rule(
            self,
            "Schedule",
            description="The hourly metering run, five minutes past each hour",
            schedule=SCHEDULE,
            targets=[
                targets.LambdaFunction(
                    self.run_function,
                    dead_letter_queue=self.dead_letter_queue,
                    retry_attempts=2,
                    max_event_age=Duration.minutes(50),
                )
            ],
        )
        self.usage_method = handoff_api.root.add_resource(USAGE_RESOURCE).add_method(
            "POST",
            apigw.LambdaIntegration(self.intake_function, proxy=True),
            authorization_type=apigw.AuthorizationType.IAM,
        )
        self.usage_invoke_arn = handoff_api.arn_for_execute_api(
            "POST", f"/{USAGE_RESOURCE}", handoff_api.deployment_stage.stage_name
        )
        self.usage_endpoint = f"{handoff_api.url}{USAGE_RESOURCE}"
        self._acknowledge(
            self.usage_method,
            "AwsSolutions-COG4",
            "IAM-authorized for the seller's backend (SigV4, execute-api:Invoke on this route "
            "only), like GET /registrations/{id}: a machine caller, no Cognito user.",
        )
        self._acknowledge(
            self.dead_letter_queue,
            "AwsSolutions-SQS3",
            "It is the dead-letter queue of the schedule's Lambda target (EventBridge's "
            "DeadLetterConfig), which cdk-nag does not see; it is alarmed on any message.",
        )
        for function, reason in (
            (self.intake_function, "X-Ray's PutTraceSegments/PutTelemetryRecords require '*'"),
            (
                self.run_function,
                "aws-marketplace:BatchMeterUsage supports no resource ARNs, and X-Ray's "
                "PutTraceSegments/PutTelemetryRecords require '*'",
            ),
        ):
            self._acknowledge(
                default_policy(function),
                "AwsSolutions-IAM5[Resource::*]",
                reason + "; every DynamoDB action is scoped to its table or named index.",
            )
            self._acknowledge(
                function,
                "AwsSolutions-L1",
                RUNTIME_REASON,
            )

    def _acknowledge(self, construct: IConstruct, rule_id: str, reason: str) -> None:
        self.acknowledgements.append(acknowledge(construct, rule_id, reason))
