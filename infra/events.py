"""Registration events: the customers table's stream -> publisher -> the stack's event bus.

Change data capture: the buyer's request only writes the customer item; this construct's
function reads the table's stream and publishes `Customer Registered` / `Customer Signed Up`
to the stack's bus. What the bus refuses waits on a retry queue (same function, with a
dead-letter queue after MAX_RECEIVE_COUNT receives); a stream record whose events reached
neither is retried by Lambda and finally reported to the stream-failure queue. A rule on the
bus notifies the seller's team by SNS with only what they need to look the customer up.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import jsii
from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk.interfaces.aws_events import IRuleRef
from constructs import Construct, IConstruct

from fulfillment import contract
from infra.nag import RUNTIME_REASON, Acknowledgement, acknowledge, default_policy
from infra.queues import encrypted_queue

# Exactly the calls the publisher makes itself; the event sources add their own read grants.
PUT_EVENTS_ACTIONS = ("events:PutEvents",)
RETRY_QUEUE_SEND_ACTIONS = ("sqs:SendMessage",)

MEMORY_MB = 256
# Worst case of one invocation: 2 PutEvents + 2 SendMessageBatch calls, each up to 3 attempts
# x (connect 2 s + read 5 s) plus backoff (fulfillment.aws.QUEUE_CONFIG).
TIMEOUT = Duration.seconds(120)
# AWS's guidance for SQS event sources: at least six times the function timeout.
RETRY_VISIBILITY_TIMEOUT = Duration.seconds(6 * 120)
MAX_RECEIVE_COUNT = 5

STREAM_BATCH_SIZE = 10
# Records stay in a DynamoDB stream for 24 h. Giving up at 12 h leaves an operator 12 h to
# read the records the stream-failure message points at (docs/events.md, runbook).
STREAM_MAX_RECORD_AGE = Duration.hours(12)
# Bisecting isolates a bad record; the attempts bound how long it can hold up its shard.
STREAM_RETRY_ATTEMPTS = 20
QUEUE_BATCH_SIZE = 10

# Alarm thresholds. A healthy retry queue is empty within seconds; a message older than this
# has been refused by the bus on several receives.
RETRY_OLDEST_MESSAGE_AGE = Duration.minutes(30)
STREAM_ITERATOR_AGE = Duration.minutes(15)

# What the seller's team gets by SNS: enough to find the customer, no more personal data.
NOTIFICATION_FIELDS = {
    "detailType": "$.detail-type",
    "time": "$.time",
    "productCode": "$.detail.productCode",
    "customerAWSAccountId": "$.detail.customerAWSAccountId",
}
# Not the registration id: while its session is open it lets anyone who reads the e-mail
# open the buyer's sign-up page. The bus event carries it for the seller's systems.


def publisher_environment(bus: events.IEventBus, retry_queue: sqs.IQueue) -> dict[str, str]:
    """The publisher's own settings variables (fulfillment.settings.PUBLISHER_ENVIRONMENT_KEYS)."""
    return {
        contract.EVENT_BUS_NAME: bus.event_bus_name,
        contract.PUBLISH_RETRY_QUEUE_URL: retry_queue.queue_url,
    }


@jsii.implements(events.IRuleTarget)
class _TopicTarget:
    """The topic as a rule target, granting nothing: CDK's SnsTopic target would add topic and
    key policy statements for EventBridge without a source condition; the construct adds its
    own, conditioned ones (RegistrationEvents._notification_topic)."""

    def __init__(self, topic: sns.ITopic, message: events.RuleTargetInput) -> None:
        self._topic = topic
        self._message = message

    def bind(self, rule: IRuleRef, id: str | None = None) -> events.RuleTargetConfig:
        return events.RuleTargetConfig(
            arn=self._topic.topic_arn, input=self._message, target_resource=self._topic
        )


class RegistrationEvents(Construct):
    """Bus, publisher, retry and failure queues, seller notification topic, and their alarms."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        table: dynamodb.Table,
        code_dir: Path,
        environment_extra: Mapping[str, str],
        log_retention: logs.RetentionDays,
        notification_email: str | None,
        stack_name: str,
        alarm_topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        if table.table_stream_arn is None:
            raise ValueError("the customers table needs a stream (fulfillment.contract.CUSTOMERS)")
        self.acknowledgements: list[Acknowledgement] = []

        self.bus = events.EventBus(self, "Bus", event_bus_name=f"{stack_name}-registrations")

        self.dead_letter_queue = encrypted_queue(self, "PublishDeadLetterQueue")
        self.retry_queue = encrypted_queue(
            self,
            "PublishRetryQueue",
            visibility_timeout=RETRY_VISIBILITY_TIMEOUT,
            dead_letter_queue=sqs.DeadLetterQueue(
                max_receive_count=MAX_RECEIVE_COUNT, queue=self.dead_letter_queue
            ),
        )
        # The stream event source's last resort: Lambda writes a pointer to the records it
        # gave up on (shard, sequence numbers), never the records themselves.
        self.stream_failure_queue = encrypted_queue(self, "StreamFailureQueue")
        self._acknowledge(
            self.stream_failure_queue,
            "AwsSolutions-SQS3",
            "This queue is itself the last-resort (on-failure) destination of the stream event "
            "source; nothing consumes it automatically, an operator reads it (alarmed).",
        )

        self.function = self._publisher(code_dir, environment_extra, log_retention)
        self._event_sources(table)

        # Named, so that the key policy can name the rule's ARN: a reference to the rule
        # would make a cycle (key -> rule -> topic -> key).
        rule_name = f"{stack_name}-notify-seller"
        self.notification_rule_arn = Stack.of(self).format_arn(
            service="events",
            resource="rule",
            resource_name=f"{self.bus.event_bus_name}/{rule_name}",
            arn_format=ArnFormat.SLASH_RESOURCE_NAME,
        )
        self.topic = self._notification_topic(stack_name)
        if notification_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(notification_email))
        self.notification_rule = events.Rule(
            self,
            "NotifySeller",
            rule_name=rule_name,
            event_bus=self.bus,
            description="Tells the seller's team about registrations and sign-ups (SNS)",
            event_pattern=events.EventPattern(source=[contract.REGISTRATION_EVENT_SOURCE]),
            targets=[
                _TopicTarget(
                    self.topic,
                    events.RuleTargetInput.from_object(
                        {
                            name: events.EventField.from_path(path)
                            for name, path in NOTIFICATION_FIELDS.items()
                        }
                    ),
                )
            ],
        )

        self.alarms = self._alarms(stack_name, alarm_topic)

    # -- resources ---------------------------------------------------------------------------

    def _publisher(
        self,
        code_dir: Path,
        environment_extra: Mapping[str, str],
        log_retention: logs.RetentionDays,
    ) -> lambda_.Function:
        function_logs = logs.LogGroup(
            self, "PublisherLogs", retention=log_retention, removal_policy=RemovalPolicy.RETAIN
        )
        role = iam.Role(
            self,
            "PublisherRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="registration events publisher: its stream, its queues, its bus only",
        )
        function_logs.grant_write(role)
        role.add_to_policy(
            iam.PolicyStatement(
                actions=list(PUT_EVENTS_ACTIONS), resources=[self.bus.event_bus_arn]
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=list(RETRY_QUEUE_SEND_ACTIONS), resources=[self.retry_queue.queue_arn]
            )
        )
        function = lambda_.Function(
            self,
            "Publisher",
            description="Publishes registration events from the customers table's stream",
            runtime=lambda_.Runtime.PYTHON_3_13,
            architecture=lambda_.Architecture.ARM_64,
            handler=contract.PUBLISHER_HANDLER,
            code=lambda_.Code.from_asset(str(code_dir)),
            memory_size=MEMORY_MB,
            timeout=TIMEOUT,
            role=role,
            environment={
                **publisher_environment(self.bus, self.retry_queue),
                **environment_extra,
            },
            log_group=function_logs,
            logging_format=lambda_.LoggingFormat.JSON,
        )
        self._acknowledge(
            function,
            "AwsSolutions-L1",
            RUNTIME_REASON,
        )
        return function

    def _event_sources(self, table: dynamodb.Table) -> None:
        self.function.add_event_source(
            sources.DynamoEventSource(
                table,
                # TRIM_HORIZON: a mapping created (or re-created) after the stream was enabled
                # still publishes every change the stream holds; LATEST would skip them.
                starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                batch_size=STREAM_BATCH_SIZE,
                bisect_batch_on_error=True,
                retry_attempts=STREAM_RETRY_ATTEMPTS,
                max_record_age=STREAM_MAX_RECORD_AGE,
                report_batch_item_failures=True,
                # Sessions never wake the function (contact details are not in this table).
                filters=[
                    lambda_.FilterCriteria.filter(
                        {
                            "dynamodb": {
                                "Keys": {
                                    contract.SK: {
                                        "S": lambda_.FilterRule.is_equal(contract.CUSTOMER_SK)
                                    }
                                }
                            }
                        }
                    )
                ],
                on_failure=sources.SqsDlq(self.stream_failure_queue),
            )
        )
        self.function.add_event_source(
            sources.SqsEventSource(
                self.retry_queue,
                batch_size=QUEUE_BATCH_SIZE,
                report_batch_item_failures=True,
            )
        )
        policy = default_policy(self.function)
        self._acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            "dynamodb:ListStreams supports no resource ARN (CDK's stream-read grant for the "
            "event source); the stream's own actions are scoped to the table's stream ARN.",
        )

    def _notification_topic(self, stack_name: str) -> sns.Topic:
        key = kms.Key(
            self,
            "NotificationKey",
            description=f"Encrypts the registration notifications of {stack_name}",
            enable_key_rotation=True,
        )
        topic = sns.Topic(
            self,
            "NotificationTopic",
            display_name=f"{stack_name} registrations",
            master_key=key,
            enforce_ssl=True,
        )
        # EventBridge may publish to the topic, and use its key, for this stack's rule only
        # (AWS's confused-deputy guidance: aws:SourceArn and aws:SourceAccount on both).
        only_the_rule = {
            "StringEquals": {"aws:SourceAccount": Stack.of(self).account},
            "ArnEquals": {"aws:SourceArn": self.notification_rule_arn},
        }
        grants: list[tuple[kms.Key | sns.Topic, str, list[str], list[str]]] = [
            (key, "UseTheKey", ["kms:Decrypt", "kms:GenerateDataKey*"], ["*"]),
            (topic, "Publish", ["sns:Publish"], [topic.topic_arn]),
        ]
        for resource, sid, actions, resources in grants:
            resource.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=f"AllowTheNotifySellerRuleTo{sid}",
                    principals=[iam.ServicePrincipal("events.amazonaws.com")],
                    actions=actions,
                    resources=resources,
                    conditions=only_the_rule,
                )
            )
        return topic

    # -- alarms ------------------------------------------------------------------------------

    def _alarms(self, stack_name: str, alarm_topic: sns.ITopic) -> list[cloudwatch.Alarm]:
        prefix = f"{stack_name}-Events"
        at_least_one = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
        specs = [
            (
                "DeadLetterDepth",
                self.dead_letter_queue.metric_approximate_number_of_messages_visible(
                    period=Duration.minutes(1), statistic=cloudwatch.Stats.MAXIMUM
                ),
                1,
                at_least_one,
                f"Registration events were refused by the bus on {MAX_RECEIVE_COUNT} receives "
                "and now wait in the dead-letter queue (kept 14 days): consumers have not seen "
                "them. Check the publisher's 'PutEvents' log lines, fix the cause, then redrive "
                "the queue (docs/events.md, runbook).",
            ),
            (
                "StreamFailureDepth",
                self.stream_failure_queue.metric_approximate_number_of_messages_visible(
                    period=Duration.minutes(1), statistic=cloudwatch.Stats.MAXIMUM
                ),
                1,
                at_least_one,
                "Lambda gave up on customer-table stream records: their events reached neither "
                "the bus nor the retry queue. The records stay in the stream for 24 h only: "
                "replay them now (docs/events.md, runbook).",
            ),
            (
                "RetryOldestMessageAge",
                self.retry_queue.metric_approximate_age_of_oldest_message(
                    period=Duration.minutes(5), statistic=cloudwatch.Stats.MAXIMUM
                ),
                RETRY_OLDEST_MESSAGE_AGE.to_seconds(),
                cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                "Events have waited on the publish retry queue for more than "
                f"{RETRY_OLDEST_MESSAGE_AGE.to_minutes()} minutes: the bus keeps refusing "
                "them. Check the publisher's logs (error_code) and the bus.",
            ),
            (
                "PublisherErrors",
                self.function.metric_errors(
                    period=Duration.minutes(5), statistic=cloudwatch.Stats.SUM
                ),
                1,
                at_least_one,
                "The events publisher failed a whole batch (bus and retry queue both refused, "
                "a timeout or a crash); Lambda retries it. Check the publisher's log group.",
            ),
            (
                "StreamIteratorAge",
                self.function.metric(
                    "IteratorAge", period=Duration.minutes(5), statistic=cloudwatch.Stats.MAXIMUM
                ),
                STREAM_ITERATOR_AGE.to_milliseconds(),
                cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                "The publisher is more than "
                f"{STREAM_ITERATOR_AGE.to_minutes()} minutes behind the customers table's "
                "stream: events are late (a failing record is being retried, or throttling).",
            ),
        ]
        alarms = []
        action = cloudwatch_actions.SnsAction(alarm_topic)
        for name, metric, threshold, operator, description in specs:
            alarm = cloudwatch.Alarm(
                self,
                f"{name}Alarm",
                alarm_name=f"{prefix}-{name}",
                alarm_description=description,
                metric=metric,
                threshold=threshold,
                comparison_operator=operator,
                evaluation_periods=1,
                datapoints_to_alarm=1,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)
            alarms.append(alarm)
        return alarms

    def _acknowledge(self, construct: IConstruct, rule_id: str, reason: str) -> None:
        self.acknowledgements.append(acknowledge(construct, rule_id, reason))
