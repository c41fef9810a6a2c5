"""Subscription lifecycle intake: Marketplace notifications -> one queue -> the lifecycle function.

AWS Marketplace tells the seller about subscriptions in two ways, both only in us-east-1:
EventBridge events on the seller account's default bus (source ``aws.agreement-marketplace``)
and, for older products, two SNS topics per product in an AWS-owned account. Both land on one
SQS queue (SNS with raw delivery off, so the function sees the SNS envelope and can tell the
two apart); the function (``fulfillment.lifecycle``) reports partial batch failures, and a
message that fails MAX_RECEIVE_COUNT times waits in the dead-letter queue (alarmed; the
runbook in docs/runbook.md says how to redrive it).

Product filtering: the License events carry ``detail.product.code``, so their rule matches the
configured codes only. The Purchase Agreement events carry no product code (AWS's documented
examples have none, the Manufacturer variant not even a product id), so their rule cannot
filter by product; the function checks PRODUCT_CODES itself (through the customer the
agreement belongs to).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from aws_cdk import Duration, Stack, Token
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IConstruct

from fulfillment import contract
from infra.api import FunctionSpec, lambda_function
from infra.config import ConfigError
from infra.nag import RUNTIME_REASON, Acknowledgement, acknowledge, default_policy
from infra.queues import encrypted_queue

# The Marketplace events (and the legacy topics) exist in this region only.
MARKETPLACE_EVENTS_REGION = "us-east-1"
# The detail types the rules subscribe to: exactly those the function handles (one
# declaration, fulfillment.contract).
AGREEMENT_EVENTS = contract.AGREEMENT_DETAIL_TYPES
LICENSE_EVENTS = contract.LICENSE_DETAIL_TYPES

# The AWS-owned account that holds every product's legacy SNS topics (the ARN the Marketplace
# Management Portal shows for a product: arn:aws:sns:us-east-1:287250355862:aws-mp-...).
MARKETPLACE_TOPIC_ACCOUNT = "287250355862"
LEGACY_TOPIC_PREFIXES = ("aws-mp-subscription-notification-", "aws-mp-entitlement-notification-")

# Exactly the calls the lifecycle function makes (the SQS event source adds its own grants):
# GetItem/UpdateItem/PutItem on the customers table, Query on its indexes (named from
# fulfillment.contract, no wildcard), GetEntitlements and GetAgreementTerms (no resource ARNs
# exist for either). The terms only of purchase agreements the seller proposed: the conditions
# of AWS's own seller policy (AWSMarketplaceSellerFullAccess), and the only role whose events
# the function reads terms for.
CUSTOMERS_TABLE_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")
INDEX_ACTIONS = ("dynamodb:Query",)
# The indexes the lifecycle store queries (fulfillment/lifecycle/store.py); not by_status, the
# metering run's, nor by_account, which nothing queries.
LIFECYCLE_INDEXES = (contract.BY_LICENSE, contract.BY_CUSTOMER_IDENTIFIER, contract.BY_AGREEMENT)
ENTITLEMENT_ACTIONS = ("aws-marketplace:GetEntitlements",)
AGREEMENT_TERMS_ACTIONS = ("aws-marketplace:GetAgreementTerms",)
AGREEMENT_TERMS_CONDITIONS = {
    "StringEquals": {"aws-marketplace:PartyType": "Proposer"},
    "ForAllValues:StringEquals": {"aws-marketplace:AgreementType": ["PurchaseAgreement"]},
}

# The function: what infra/api.py's helper gives every function (python3.13, arm64, 1024 MB,
# 20 s, JSON logs, X-Ray). SQS wants the visibility timeout at least 6x the function timeout.
FUNCTION_TIMEOUT_SECONDS = 20
VISIBILITY_TIMEOUT = Duration.seconds(6 * FUNCTION_TIMEOUT_SECONDS)
MAX_RECEIVE_COUNT = 5
BATCH_SIZE = 10
# Short: the Manufacturer and Proposer variants of one change tend to arrive together, and a
# buyer waits on neither.
MAX_BATCHING_WINDOW = Duration.seconds(1)

# Alarm thresholds.
OLDEST_MESSAGE_AGE = Duration.minutes(15)

# The function's metric and its dimensions: fulfillment.contract (LIFECYCLE_NOTIFICATION).


def lifecycle_environment(table: dynamodb.ITable, product_codes: Sequence[str]) -> dict[str, str]:
    """The lifecycle function's own settings variables (fulfillment.settings)."""
    return {
        contract.CUSTOMERS_TABLE_NAME: table.table_name,
        contract.PRODUCT_CODES: ",".join(product_codes),
    }


def legacy_topic_arns(product_code: str) -> tuple[str, str]:
    """The two AWS-owned SNS topics of one product (subscription, entitlement)."""
    subscription, entitlement = (
        f"arn:aws:sns:{MARKETPLACE_EVENTS_REGION}:{MARKETPLACE_TOPIC_ACCOUNT}:{prefix}{product_code}"
        for prefix in LEGACY_TOPIC_PREFIXES
    )
    return subscription, entitlement


class RegionError(ConfigError):
    """Lifecycle intake is on but the stack deploys to a region without Marketplace events."""


def check_region(stack: Stack) -> None:
    """Refuse a concrete region other than us-east-1; an env-agnostic stack passes."""
    region = stack.region
    if not Token.is_unresolved(region) and region != MARKETPLACE_EVENTS_REGION:
        raise RegionError(
            f"the stack deploys to {region}, but AWS Marketplace sends lifecycle events (and "
            f"the legacy SNS topics live) in {MARKETPLACE_EVENTS_REGION} only: deploy there, or "
            "turn lifecycle intake off with -c lifecycleEnabled=false"
        )


class Lifecycle(Construct):
    """Rules + legacy SNS subscriptions -> queue (+ DLQ) -> lifecycle function, with alarms."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        table: dynamodb.ITable,
        product_codes: Sequence[str],
        legacy_sns_product_codes: Sequence[str],
        code_dir: Path,
        environment_extra: Mapping[str, str],
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        check_region(Stack.of(self))
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

        # Two rules, one queue: only the License events can be filtered by product code.
        self.agreement_rule = events.Rule(
            self,
            "AgreementEvents",
            description="Marketplace purchase agreement events (no product code in them)",
            event_pattern=events.EventPattern(
                source=[contract.MARKETPLACE_EVENT_SOURCE], detail_type=list(AGREEMENT_EVENTS)
            ),
            targets=[targets.SqsQueue(self.queue)],
        )
        self.license_rule = events.Rule(
            self,
            "LicenseEvents",
            description="Marketplace license events of this endpoint's products",
            event_pattern=events.EventPattern(
                source=[contract.MARKETPLACE_EVENT_SOURCE],
                detail_type=list(LICENSE_EVENTS),
                detail={"product": {"code": list(product_codes)}},
            ),
            targets=[targets.SqsQueue(self.queue)],
        )
        self.rules = (self.agreement_rule, self.license_rule)

        self.legacy_topics: list[sns.ITopic] = []
        for index, code in enumerate(legacy_sns_product_codes):
            for kind, arn in zip(
                ("Subscription", "Entitlement"), legacy_topic_arns(code), strict=True
            ):
                topic = sns.Topic.from_topic_arn(self, f"Legacy{kind}Topic{index}", arn)
                # Raw delivery off: the body is the SNS envelope, which tells the function
                # (and whoever reads the dead-letter queue) which topic a message came from.
                topic.add_subscription(
                    subscriptions.SqsSubscription(self.queue, raw_message_delivery=False)
                )
                self.legacy_topics.append(topic)

        self.function = self._function(
            table, product_codes, code_dir, environment_extra, log_retention
        )
        self.function.add_event_source(
            sources.SqsEventSource(
                self.queue,
                batch_size=BATCH_SIZE,
                max_batching_window=MAX_BATCHING_WINDOW,
                report_batch_item_failures=True,
            )
        )

    # -- resources ---------------------------------------------------------------------------

    def _function(
        self,
        table: dynamodb.ITable,
        product_codes: Sequence[str],
        code_dir: Path,
        environment_extra: Mapping[str, str],
        log_retention: logs.RetentionDays,
    ) -> lambda_.Function:
        indexes = [f"{table.table_arn}/index/{name}" for name in LIFECYCLE_INDEXES]
        function = lambda_function(
            self,
            FunctionSpec(
                construct_prefix="Lifecycle",
                handler=contract.LIFECYCLE_HANDLER,
                description="Marketplace subscription lifecycle: status, entitlements, free trials",
                role_description="lifecycle function: customers table, its indexes, "
                "GetEntitlements, GetAgreementTerms",
                environment={
                    **lifecycle_environment(table, product_codes),
                    **environment_extra,
                },
                statements=[
                    iam.PolicyStatement(
                        actions=list(CUSTOMERS_TABLE_ACTIONS), resources=[table.table_arn]
                    ),
                    iam.PolicyStatement(actions=list(INDEX_ACTIONS), resources=indexes),
                    iam.PolicyStatement(actions=list(ENTITLEMENT_ACTIONS), resources=["*"]),
                    iam.PolicyStatement(
                        actions=list(AGREEMENT_TERMS_ACTIONS),
                        resources=["*"],
                        conditions=AGREEMENT_TERMS_CONDITIONS,
                    ),
                ],
            ),
            code=lambda_.Code.from_asset(str(code_dir)),
            retention=log_retention,
        )
        policy = default_policy(function)
        self._acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            "aws-marketplace:GetEntitlements and GetAgreementTerms support no resource ARNs "
            "(GetAgreementTerms is held to purchase agreements the seller proposed by IAM "
            "conditions), and X-Ray's "
            "PutTraceSegments/PutTelemetryRecords (active tracing) require '*'; every DynamoDB "
            "action is scoped to the customers table or one of its named indexes.",
        )
        self._acknowledge(
            function,
            "AwsSolutions-L1",
            RUNTIME_REASON,
        )
        return function

    def _acknowledge(self, construct: IConstruct, rule_id: str, reason: str) -> None:
        self.acknowledgements.append(acknowledge(construct, rule_id, reason))
