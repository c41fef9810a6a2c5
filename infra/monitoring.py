"""Monitoring: one dashboard and the alarms of the fulfillment endpoint, on one SNS topic."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from cdk_monitoring_constructs import (
    AlarmFactoryDefaults,
    CustomMetricGroup,
    CustomMetricWithAlarm,
    CustomThreshold,
    DashboardRenderingPreference,
    DefaultDashboardFactory,
    ErrorCountThreshold,
    ErrorRateThreshold,
    LatencyThreshold,
    MaxMessageAgeThreshold,
    MaxMessageCountThreshold,
    MonitoringFacade,
    SnsAlarmActionStrategy,
    ThrottledEventsThreshold,
)
from constructs import Construct

from fulfillment import contract
from fulfillment.contract import MetricName

# Alarm thresholds. Registrations are rare (a buyer subscribing), so every alarm either needs
# several events or is about something that should never happen at all.
API_5XX_RATE = 0.01  # fraction of requests
API_5XX_MIN_REQUESTS = 5  # in the 5-minute period, so one unlucky request does not page
API_P90_LATENCY = Duration.seconds(3)
MARKETPLACE_FAILURE_PERCENT = 10
MARKETPLACE_FAILURE_MIN_COUNT = 3  # in the 5-minute period

_PERIOD = Duration.minutes(5)
# An hour still unmetered this long after it began pages (Marketplace's limit is 24 hours).
UNMETERED_HOUR_ALARM = Duration.hours(6)
# Every EventType of LifecycleNotification: the notification types, and one for unreadable bodies.
LIFECYCLE_EVENT_TYPES: tuple[str, ...] = (*contract.NotificationType, contract.UNKNOWN_EVENT_TYPE)
_CRITICAL = "Critical"
_WARNING = "Warning"


class Monitoring(Construct):
    """The dashboard, the alarms and the SNS topic they notify (optionally e-mailed)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        api: apigateway.RestApi,
        function: lambda_.IFunction,
        tables: Sequence[dynamodb.ITable],
        namespace: str,
        service: str,
        alarm_email: str | None,
        dashboard_name: str,
        other_functions: Mapping[str, lambda_.IFunction] | None = None,
    ) -> None:
        """``other_functions``: alarm-name stem -> function, watched like the fulfillment one."""
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self._namespace = namespace
        self._service = service

        self.topic = self._alarm_topic(stack)
        if alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))

        notify = SnsAlarmActionStrategy(on_alarm_topic=self.topic, on_ok_topic=self.topic)
        self._facade = facade = MonitoringFacade(
            self,
            "Facade",
            alarm_factory_defaults=AlarmFactoryDefaults(
                alarm_name_prefix=stack.stack_name,
                actions_enabled=True,
                action=notify,
                # The library's default is 3 of 3; each alarm below says what it needs.
                datapoints_to_alarm=1,
                evaluation_periods=1,
            ),
            dashboard_factory=DefaultDashboardFactory(
                self,
                "Dashboards",
                dashboard_name_prefix=dashboard_name,
                create_dashboard=True,
                create_summary_dashboard=False,
                create_alarm_dashboard=False,
                rendering_preference=DashboardRenderingPreference.INTERACTIVE_ONLY,
            ),
        )

        facade.add_large_header(f"Marketplace fulfillment ({service})")
        self._monitor_registrations(facade, function)
        self._monitor_api(facade, api)
        self._monitor_function(facade, function, "Function", "Fulfillment function")
        for stem, other in (other_functions or {}).items():
            self._monitor_function(facade, other, stem, f"{stem} function")
        for table in tables:
            self._monitor_table(facade, table)

        self.alarms: list[cloudwatch.AlarmBase] = [
            created.alarm for created in facade.created_alarms()
        ]
        self.dashboard_url = (
            f"https://{stack.region}.console.aws.amazon.com/cloudwatch/home"
            f"?region={stack.region}#dashboards:name={dashboard_name}"
        )

    def monitor_lifecycle(
        self,
        *,
        function: lambda_.IFunction,
        queue: sqs.IQueue,
        dead_letter_queue: sqs.IQueue,
        oldest_message_age: Duration,
        max_receive_count: int,
    ) -> None:
        """Rows and alarms for the subscription lifecycle intake (infra/lifecycle.py)."""
        facade = self._facade
        before = len(facade.created_alarms())
        facade.add_large_header("Subscription lifecycle")
        # Every (event type, outcome) pair would be 66 lines: a SEARCH draws those that occur.
        dimensions = (
            f"{{{self._namespace},{contract.EVENT_TYPE_DIMENSION},"
            f"{contract.OUTCOME_DIMENSION},{contract.SERVICE_DIMENSION}}}"
        )
        by_type_and_outcome = cloudwatch.MathExpression(
            expression=(
                f'SEARCH(\'{dimensions} MetricName="{MetricName.LIFECYCLE_NOTIFICATION}" '
                f"{contract.SERVICE_DIMENSION}=\"{self._service}\"', 'Sum', "
                f"{int(_PERIOD.to_seconds())})"
            ),
            using_metrics={},
            label="",
            period=_PERIOD,
        )
        facade.monitor_custom(
            alarm_friendly_name="Lifecycle",
            human_readable_name="Lifecycle notifications",
            description=(
                f"{MetricName.LIFECYCLE_NOTIFICATION} by {contract.EVENT_TYPE_DIMENSION} and "
                f"{contract.OUTCOME_DIMENSION} (namespace {self._namespace}, service "
                f"{self._service})."
            ),
            metric_groups=[
                CustomMetricGroup(
                    title="Notifications by event type and outcome",
                    metrics=[by_type_and_outcome],
                ),
                CustomMetricGroup(
                    title="Entitlements discarded by reason",
                    metrics=[
                        self._entitlements_discarded_alarm(),
                        self._entitlements_discarded(
                            contract.EntitlementDiscardReason.INVALID_PARAMETER
                        ),
                    ],
                ),
                CustomMetricGroup(
                    title="Agreement terms unknown by reason",
                    metrics=[
                        self._agreement_terms_unknown_alarm(),
                        *(
                            self._agreement_terms_unknown(reason)
                            for reason in contract.AgreementTermsUnknownReason
                            if reason is not contract.AgreementTermsUnknownReason.ACCESS_DENIED
                        ),
                    ],
                ),
                CustomMetricGroup(
                    title="Processing failures by event type",
                    metrics=[
                        self._metric(
                            MetricName.LIFECYCLE_NOTIFICATION,
                            label=event_type,
                            dimensions={
                                contract.EVENT_TYPE_DIMENSION: event_type,
                                contract.OUTCOME_DIMENSION: contract.LifecycleOutcome.FAILED,
                            },
                        )
                        for event_type in LIFECYCLE_EVENT_TYPES
                    ],
                ),
            ],
        )
        self._monitor_queue_consumer(
            facade,
            stem="Lifecycle",
            function=function,
            queue=queue,
            dead_letter_queue=dead_letter_queue,
            oldest_message_age=oldest_message_age,
            late_description=(
                f"A Marketplace lifecycle notification has waited on the lifecycle queue "
                f"for more than {oldest_message_age.to_minutes()} minutes: customers' "
                f"status (access granted or revoked) is late. Check first: the lifecycle "
                f"function's Errors and throttles, its log group ('GetEntitlements', "
                f"DynamoDB errors), then whether its event source mapping is enabled "
                f"(docs/runbook.md)."
            ),
            dead_letter_description=(
                f"A lifecycle notification failed {max_receive_count} times and now "
                f"waits in the lifecycle dead-letter queue (kept 14 days): that "
                f"customer's status did not change. Inspect the message, fix the cause, "
                f"then redrive with 'aws sqs start-message-move-task' "
                f"(docs/runbook.md)."
            ),
            fault_description=(
                "The lifecycle function failed a whole invocation in the last 5 "
                "minutes (a timeout, a crash while starting, or every message of a "
                "batch failing). Its messages return to the queue and are retried, "
                "then dead-lettered. Check first: the function's log group "
                "('Task timed out', init errors, 'batch failed'), the last deployment."
            ),
        )
        self.alarms += [created.alarm for created in facade.created_alarms()[before:]]

    def monitor_recovery(
        self,
        *,
        function: lambda_.IFunction,
        queue: sqs.IQueue,
        dead_letter_queue: sqs.IQueue,
        oldest_message_age: Duration,
        max_receive_count: int,
    ) -> None:
        """Rows and alarms for registration recovery (infra/recovery.py)."""
        facade = self._facade
        before = len(facade.created_alarms())
        facade.add_large_header("Registration recovery")
        facade.monitor_custom(
            alarm_friendly_name="Recovery",
            human_readable_name="Parked and recovered registrations",
            description=(
                f"{MetricName.REGISTRATION_DEFERRED}: a resolved registration whose writes failed "
                f"was parked on the recovery queue; {MetricName.REGISTRATION_RECOVERED}: one was "
                f"replayed into the customers table."
            ),
            metric_groups=[
                CustomMetricGroup(
                    title="Parked and recovered registrations",
                    metrics=[
                        self._metric(MetricName.REGISTRATION_DEFERRED, label="Parked"),
                        self._metric(MetricName.REGISTRATION_RECOVERED, label="Recovered"),
                    ],
                )
            ],
        )
        self._monitor_queue_consumer(
            facade,
            stem="Recovery",
            function=function,
            queue=queue,
            dead_letter_queue=dead_letter_queue,
            oldest_message_age=oldest_message_age,
            late_description=(
                f"A resolved registration has waited on the recovery queue for more "
                f"than {oldest_message_age.to_minutes()} minutes: a buyer who paid is "
                f"not in the customers table yet and cannot finish signing up. Check "
                f"first: the recovery function's log group (DynamoDB error codes), its "
                f"Errors and throttles, the customers table's throttling, and whether "
                f"its event source mapping is enabled (docs/reliability.md)."
            ),
            dead_letter_description=(
                f"Recovered registrations stuck: a resolved registration failed "
                f"{max_receive_count} replays and waits in the recovery dead-letter "
                f"queue (kept 14 days). A paying customer is NOT recorded. Inspect the "
                f"message and the recovery function's logs, fix the cause, then "
                f"redrive with 'aws sqs start-message-move-task' (docs/reliability.md)."
            ),
            fault_description=(
                "The recovery function failed an invocation in the last 5 minutes. It "
                "takes one parked registration per invocation, so this is a replay that "
                "failed (DynamoDB still unavailable, a message that is not a parked "
                "registration), a timeout or a crash while starting. The message returns "
                "to the recovery queue and is retried, then dead-lettered. Check its log "
                "group (error codes) and the last deployment."
            ),
        )
        self.alarms += [created.alarm for created in facade.created_alarms()[before:]]

    def monitor_metering(
        self,
        *,
        intake: lambda_.IFunction,
        run: lambda_.IFunction,
        dead_letter_queue: sqs.IQueue,
        dimensions: Sequence[str],
    ) -> None:
        """Rows and alarms for metering (infra/metering.py, docs/metering.md)."""
        facade = self._facade
        before = len(facade.created_alarms())
        facade.add_large_header("Metering")
        outcome = contract.OUTCOME_DIMENSION

        def records(value: str) -> cloudwatch.Metric:
            return self._metric(
                MetricName.METERING_RECORDS, label=value, dimensions={outcome: value}
            )

        def alarmed(value: str, name: str, description: str) -> CustomMetricWithAlarm:
            return CustomMetricWithAlarm(
                metric=records(value), alarm_friendly_name=name, add_alarm=_on_any(description)
            )

        oldest = cloudwatch.Metric(
            namespace=self._namespace,
            metric_name=MetricName.OLDEST_UNMETERED_HOUR_AGE,
            dimensions_map={contract.SERVICE_DIMENSION: self._service},
            statistic=cloudwatch.Stats.MAXIMUM,
            period=Duration.hours(1),
            label="Oldest unmetered hour (s)",
        )
        facade.monitor_custom(
            alarm_friendly_name="Metering",
            human_readable_name="Usage and metering",
            description=(
                f"{MetricName.USAGE_REPORTS} and {MetricName.METERING_RECORDS} by "
                f"{outcome}; dimensions metered: {', '.join(dimensions)}."
            ),
            metric_groups=[
                CustomMetricGroup(
                    title="Usage reports by outcome",
                    metrics=[
                        cloudwatch.MathExpression(
                            expression=(
                                f"SEARCH('{{{self._namespace},{outcome},"
                                f"{contract.SERVICE_DIMENSION}}} "
                                f'MetricName="{MetricName.USAGE_REPORTS}" '
                                f"{contract.SERVICE_DIMENSION}=\"{self._service}\"', 'Sum', "
                                f"{int(_PERIOD.to_seconds())})"
                            ),
                            using_metrics={},
                            label="",
                            period=_PERIOD,
                        )
                    ],
                ),
                CustomMetricGroup(
                    title="Metering records by outcome",
                    metrics=[
                        records("metered"),
                        records("pending"),
                        alarmed(
                            "duplicate-record",
                            "Metering-DuplicateRecord",
                            "BatchMeterUsage answered DuplicateRecord: Marketplace already "
                            "holds another quantity for that customer, dimension and hour. A "
                            "data-integrity fault: something else meters this product, or "
                            "usage changed after it was sealed. Check first: the metering "
                            "run's RESULT items of that hour (docs/runbook.md).",
                        ),
                        alarmed(
                            "customer-not-subscribed",
                            "Metering-CustomerNotSubscribed",
                            "BatchMeterUsage answered CustomerNotSubscribed: usage was "
                            "accepted for a customer Marketplace no longer bills. It is kept, "
                            "not retried. Check first: the customer's status and the "
                            "lifecycle queue (docs/runbook.md).",
                        ),
                        alarmed(
                            "quarantined",
                            "Metering-Quarantined",
                            "BatchMeterUsage refused a record as invalid (license, "
                            "dimension, tag, allocation or timestamp); it is quarantined with "
                            "its error code and will not be sent again. Check first: the "
                            "RESULT items with error_code, and the product's dimensions "
                            "against context meteringDimensions (docs/runbook.md).",
                        ),
                        alarmed(
                            "expired",
                            "Metering-Expired",
                            "An hour's usage could no longer be sent within Marketplace's "
                            "window: it is lost for billing. Check first: why the hourly "
                            "runs failed (the run function's errors, the schedule's "
                            "dead-letter queue) (docs/runbook.md).",
                        ),
                    ],
                ),
                CustomMetricGroup(
                    title="Oldest unmetered hour",
                    metrics=[
                        CustomMetricWithAlarm(
                            metric=oldest,
                            alarm_friendly_name="Metering-OldestUnmeteredHour",
                            add_alarm={
                                _CRITICAL: CustomThreshold(
                                    threshold=UNMETERED_HOUR_ALARM.to_seconds(),
                                    comparison_operator=(
                                        cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
                                    ),
                                    treat_missing_data_override=(
                                        cloudwatch.TreatMissingData.BREACHING
                                    ),
                                    alarm_description_override=(
                                        f"An hour's usage is still not metered "
                                        f"{UNMETERED_HOUR_ALARM.to_hours()} hours after it "
                                        f"began (or the hourly run reported nothing): "
                                        f"Marketplace refuses records 24 hours old, so it "
                                        f"is lost unless the run succeeds soon. Check first: "
                                        f"the run function's log group and errors, throttling "
                                        f"of BatchMeterUsage (docs/runbook.md)."
                                    ),
                                )
                            },
                        )
                    ],
                ),
            ],
        )
        self._monitor_function(
            facade,
            intake,
            "UsageIntake-Function",
            "Usage intake function",
            "The usage intake (POST /usage) failed an invocation in the last 5 minutes: a "
            "timeout or a crash; the seller's backend got API Gateway's 502 and should send "
            "the same batch again. Check its log group.",
        )
        self._monitor_function(
            facade,
            run,
            "MeteringRun-Function",
            "Metering run function",
            "The hourly metering run failed (DynamoDB unavailable, a timeout or a crash). "
            "The schedule retries it twice; the next hour's run starts where it stopped and "
            "bills nothing twice. Check its log group.",
        )
        facade.monitor_sqs_queue(
            queue=dead_letter_queue,
            alarm_friendly_name="Metering-ScheduleDLQ",
            human_readable_name="Metering schedule dead-letter queue",
            add_queue_max_size_alarm={
                _CRITICAL: MaxMessageCountThreshold(
                    max_message_count=0,
                    alarm_description_override=(
                        "An hourly metering invocation failed three times and its event waits "
                        "in the dead-letter queue. The next hour's run meters the missed hour "
                        "too, within 23 hours. Check the run function's log group."
                    ),
                )
            },
        )
        self.alarms += [created.alarm for created in facade.created_alarms()[before:]]

    def _alarm_topic(self, stack: Stack) -> sns.Topic:
        # CloudWatch cannot publish to a topic under the AWS-managed aws/sns key: its key
        # policy cannot be changed to let cloudwatch.amazonaws.com use it.
        key = kms.Key(
            self,
            "AlarmTopicKey",
            description=f"Encrypts the alarm notifications of {stack.stack_name}",
            enable_key_rotation=True,
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
            )
        )
        topic = sns.Topic(
            self,
            "AlarmTopic",
            display_name=f"{stack.stack_name} alarms",
            master_key=key,
            enforce_ssl=True,
        )
        # Setting a topic policy (enforce_ssl does) replaces the default one: allow this
        # account's alarms, and only them, to publish.
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsOfThisAccount",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {
                        "aws:SourceArn": stack.format_arn(
                            service="cloudwatch",
                            resource="alarm",
                            resource_name="*",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    },
                },
            )
        )
        return topic

    # -- the function's own metrics (EMF) --------------------------------------------------

    def _metric(
        self,
        name: str,
        *,
        label: str,
        dimensions: dict[str, str] | None = None,
        period: Duration = _PERIOD,
    ) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=self._namespace,
            metric_name=name,
            dimensions_map={**(dimensions or {}), contract.SERVICE_DIMENSION: self._service},
            statistic=cloudwatch.Stats.SUM,
            period=period,
            label=label,
        )

    def _entitlements_discarded(self, reason: str) -> cloudwatch.Metric:
        return self._metric(
            MetricName.ENTITLEMENTS_DISCARDED,
            label=reason,
            dimensions={contract.REASON_DIMENSION: reason},
        )

    def _entitlements_discarded_alarm(self) -> CustomMetricWithAlarm:
        # Another customer's entitlements in an answer: a data-integrity signal worth a look
        # each time. InvalidParameter (a query Marketplace refused) is drawn, not alarmed:
        # the record is acknowledged and the next license event fetches again.
        return CustomMetricWithAlarm(
            metric=self._entitlements_discarded(contract.EntitlementDiscardReason.OTHER_CUSTOMER),
            alarm_friendly_name="Entitlements-OtherCustomer",
            add_alarm=_on_any(
                "GetEntitlements answered entitlements of another license, customer "
                "or product for a lifecycle notification; they were ignored and only "
                "the customer's own were stored. Check first: the lifecycle function's "
                "'entitlements of another customer' log lines (product code, counts), "
                "then the customer's stored entitlements against the AWS Marketplace "
                "Management Portal (docs/runbook.md)."
            ),
        )

    def _agreement_terms_unknown(self, reason: str) -> cloudwatch.Metric:
        return self._metric(
            MetricName.AGREEMENT_TERMS_UNKNOWN,
            label=reason,
            dimensions={contract.REASON_DIMENSION: reason},
        )

    def _agreement_terms_unknown_alarm(self) -> CustomMetricWithAlarm:
        # AccessDenied is the role (or the seller's account) unable to read any agreement's
        # terms: no free trial will be known until it is fixed. NotFound and InvalidRequest
        # concern one agreement and are drawn only.
        return CustomMetricWithAlarm(
            metric=self._agreement_terms_unknown(
                contract.AgreementTermsUnknownReason.ACCESS_DENIED
            ),
            alarm_friendly_name="AgreementTerms-AccessDenied",
            add_alarm=_on_any(
                "GetAgreementTerms answered AccessDeniedException for an agreement the "
                "seller proposed, so whether its buyer is on a free trial is not known "
                "(the status and everything else were recorded). Check first: the "
                "lifecycle function role's aws-marketplace:GetAgreementTerms statement "
                "and any SCP or permission boundary on it (docs/runbook.md)."
            ),
        )

    def _marketplace_error(self, code: str) -> cloudwatch.Metric:
        return self._metric(
            MetricName.MARKETPLACE_ERROR,
            label=code,
            dimensions={contract.ERROR_CODE_DIMENSION: code},
        )

    def _monitor_registrations(self, facade: MonitoringFacade, function: lambda_.IFunction) -> None:
        disabled_api = CustomMetricWithAlarm(
            metric=self._marketplace_error(contract.MarketplaceErrorCode.DISABLED_API).with_(
                period=Duration.minutes(1)
            ),
            alarm_friendly_name="Marketplace-DisabledApi",
            add_alarm=_on_any(
                "ResolveCustomer answered DisabledApiException: the Marketplace Metering "
                "API is not enabled for this product or region, so EVERY registration "
                "fails until it is fixed (buyers see a 503 page). Check first: the "
                "function's MARKETPLACE_REGION setting (ResolveCustomer is served in "
                "us-east-1) and its 'configuration fault' log lines, then the product's "
                "status in the AWS Marketplace Management Portal."
            ),
        )
        failure_rate = CustomMetricWithAlarm(
            metric=self._marketplace_failure_percent(),
            alarm_friendly_name="Marketplace-FailureRate",
            add_alarm={
                _CRITICAL: CustomThreshold(
                    threshold=MARKETPLACE_FAILURE_PERCENT,
                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                    treat_missing_data_override=cloudwatch.TreatMissingData.NOT_BREACHING,
                    alarm_description_override=(
                        f"More than {MARKETPLACE_FAILURE_PERCENT}% of ResolveCustomer calls "
                        f"failed on the Marketplace side (throttling, AWS internal errors, "
                        f"disabled API, timeouts, answers without a customer identity, "
                        f"unknown errors) in 5 minutes, with at least "
                        f"{MARKETPLACE_FAILURE_MIN_COUNT} failures so a single blip among "
                        f"rare registrations does not page. Buyers got a 'try again' page. "
                        f"Invalid or expired tokens are the buyer's and are not counted. "
                        f"Check first: the dashboard's 'Marketplace errors by code' graph, "
                        f"the function's 'ResolveCustomer failed' log lines (error_code), then the "
                        f"AWS Health Dashboard for AWS Metering Marketplace."
                    ),
                )
            },
        )
        facade.monitor_custom(
            alarm_friendly_name="Registration",
            human_readable_name="Registrations",
            description=(
                f"Metrics the function emits (namespace {self._namespace}, "
                f"service {self._service})."
            ),
            metric_groups=[
                CustomMetricGroup(
                    title="Registrations per minute",
                    metrics=[
                        self._metric(
                            MetricName.REGISTRATION_SUCCEEDED,
                            label="Registrations",
                            period=Duration.minutes(1),
                        )
                    ],
                ),
                CustomMetricGroup(
                    title="New versus returning customers",
                    metrics=[
                        self._metric(MetricName.NEW_CUSTOMER, label="New"),
                        self._metric(MetricName.RETURNING_CUSTOMER, label="Returning"),
                        self._metric(MetricName.DUPLICATE_SUBMISSION, label="Duplicate submission"),
                    ],
                ),
                CustomMetricGroup(
                    title="Rejections by reason",
                    metrics=[
                        self._metric(
                            MetricName.REGISTRATION_REJECTED,
                            label=reason,
                            dimensions={contract.REASON_DIMENSION: reason},
                        )
                        for reason in contract.RejectionReason
                    ],
                ),
                CustomMetricGroup(
                    title="Marketplace errors by code",
                    metrics=[
                        disabled_api
                        if code == contract.MarketplaceErrorCode.DISABLED_API
                        else self._marketplace_error(code)
                        for code in contract.MarketplaceErrorCode
                    ],
                ),
                CustomMetricGroup(
                    title="Marketplace failure rate (%)",
                    metrics=[failure_rate],
                ),
                CustomMetricGroup(
                    title="Sign-ups completed and rejected",
                    metrics=[
                        self._metric(MetricName.SIGNUP_COMPLETED, label="Completed"),
                        *(
                            self._metric(
                                MetricName.SIGNUP_REJECTED,
                                label=f"Rejected: {reason}",
                                dimensions={contract.REASON_DIMENSION: reason},
                            )
                            for reason in contract.SignupRejectionReason
                        ),
                    ],
                ),
                CustomMetricGroup(
                    title="Cold starts",
                    metrics=[
                        self._metric(
                            contract.COLD_START,
                            label="Cold starts",
                            dimensions={contract.FUNCTION_NAME_DIMENSION: function.function_name},
                        )
                    ],
                ),
            ],
        )

    def _marketplace_failure_percent(self) -> cloudwatch.MathExpression:
        # FILL(..., 0): periods without a given code still count, or the sum would be missing.
        failure_ids = {
            f"f{index}": self._marketplace_error(code)
            for index, code in enumerate(contract.MARKETPLACE_FAILURE_CODES)
        }
        failures = cloudwatch.MathExpression(
            expression=" + ".join(f"FILL({metric_id}, 0)" for metric_id in failure_ids),
            using_metrics=failure_ids,
            label="Marketplace failures",
            period=_PERIOD,
        )
        return cloudwatch.MathExpression(
            expression=(
                f"IF(failures >= {MARKETPLACE_FAILURE_MIN_COUNT}, "
                "100 * failures / (failures + FILL(succeeded, 0)), 0)"
            ),
            using_metrics={
                "failures": failures,
                "succeeded": self._metric(MetricName.REGISTRATION_SUCCEEDED, label="Registrations"),
            },
            label="Marketplace failures (% of resolutions)",
            period=_PERIOD,
        )

    # -- AWS service metrics --------------------------------------------------------------

    def _monitor_api(self, facade: MonitoringFacade, api: apigateway.RestApi) -> None:
        facade.monitor_api_gateway(
            api=api,
            api_stage=api.deployment_stage.stage_name,
            alarm_friendly_name="Api",
            human_readable_name="API Gateway",
            add5_xx_fault_rate_alarm={
                _CRITICAL: ErrorRateThreshold(
                    max_error_rate=API_5XX_RATE,
                    min_sample_count_to_evaluate_datapoint=API_5XX_MIN_REQUESTS - 1,
                    alarm_description_override=(
                        f"More than {API_5XX_RATE:.0%} of requests to the fulfillment API "
                        f"answered 5xx in 5 minutes (evaluated once there are at least "
                        f"{API_5XX_MIN_REQUESTS} requests). Buyers coming from AWS Marketplace "
                        f"see an error page instead of signing up. Check first: the "
                        f"Marketplace and DynamoDB alarms and graphs (503 = Marketplace or "
                        f"DynamoDB unavailable), then the function's 'unexpected error' and "
                        f"'configuration fault' log lines (500)."
                    ),
                )
            },
            add_latency_p90_alarm={
                _WARNING: LatencyThreshold(
                    max_latency=API_P90_LATENCY,
                    datapoints_to_alarm=2,
                    evaluation_periods=3,
                    alarm_description_override=(
                        f"The fulfillment API's p90 latency was above "
                        f"{API_P90_LATENCY.to_seconds():.0f} s in 2 of the last 3 five-minute "
                        f"periods: buyers wait on the redirect to sign-up. Check first: the "
                        f"function's Duration and cold starts on the dashboard, then slow "
                        f"ResolveCustomer calls (Marketplace throttling) or DynamoDB latency."
                    ),
                )
            },
        )

    def _monitor_queue_consumer(
        self,
        facade: MonitoringFacade,
        *,
        stem: str,
        function: lambda_.IFunction,
        queue: sqs.IQueue,
        dead_letter_queue: sqs.IQueue,
        oldest_message_age: Duration,
        late_description: str,
        dead_letter_description: str,
        fault_description: str,
    ) -> None:
        """A queue-fed function: its queue's oldest message, its dead letters, its faults."""
        facade.monitor_sqs_queue_with_dlq(
            queue=queue,
            dead_letter_queue=dead_letter_queue,
            alarm_friendly_name=f"{stem}-Queue",
            human_readable_name=f"{stem} queue and dead-letter queue",
            add_queue_max_message_age_alarm={
                _CRITICAL: MaxMessageAgeThreshold(
                    max_age_in_seconds=int(oldest_message_age.to_seconds()),
                    alarm_description_override=late_description,
                )
            },
            add_dead_letter_queue_max_size_alarm={
                _CRITICAL: MaxMessageCountThreshold(
                    max_message_count=0, alarm_description_override=dead_letter_description
                )
            },
        )
        self._monitor_function(
            facade, function, f"{stem}-Function", f"{stem} function", fault_description
        )

    def _monitor_function(
        self,
        facade: MonitoringFacade,
        function: lambda_.IFunction,
        friendly_name: str,
        human_name: str,
        fault_description: str | None = None,
    ) -> None:
        """The function's row and its fault alarm; the description defaults to an API
        function's (every exception is a page, so a fault is a crash or a timeout)."""
        facade.monitor_lambda_function(
            lambda_function=function,
            alarm_friendly_name=friendly_name,
            human_readable_name=human_name,
            add_fault_count_alarm={
                _CRITICAL: ErrorCountThreshold(
                    max_error_count=0,
                    alarm_description_override=fault_description
                    or (
                        f"The {human_name.lower()} failed an invocation in the last 5 minutes "
                        "(Lambda Errors > 0). Its handler turns every exception into a page, so "
                        "this means a timeout, running out of memory, a crash while starting "
                        "(import or configuration) or a bug outside the handler: the buyer got "
                        "API Gateway's bare 502. Check first: the function's log group for "
                        "'Task timed out', 'Runtime exited' or an init error, and the last "
                        "deployment."
                    ),
                )
            },
        )

    def _monitor_table(self, facade: MonitoringFacade, table: dynamodb.ITable) -> None:
        name = table.node.id
        description = (
            f"DynamoDB throttled {{kind}} requests on table {name} in the last 5 minutes. "
            f"Requests that still failed after the SDK's retries became a 'try again' (503) "
            f"page. Check first: the table's consumed capacity and throttles on the dashboard "
            f"(a hot partition key or the on-demand account limit), then the function's "
            f"'DynamoDB unavailable' log lines."
        )
        facade.monitor_dynamo_table(
            table=table,
            alarm_friendly_name=f"Table-{name}",
            human_readable_name=f"DynamoDB table {name}",
            add_read_throttled_events_count_alarm={
                _CRITICAL: ThrottledEventsThreshold(
                    max_throttled_events_threshold=0,
                    alarm_description_override=description.format(kind="read"),
                )
            },
            add_write_throttled_events_count_alarm={
                _CRITICAL: ThrottledEventsThreshold(
                    max_throttled_events_threshold=0,
                    alarm_description_override=description.format(kind="write"),
                )
            },
        )


def _on_any(description: str) -> dict[str, CustomThreshold]:
    """A critical alarm on any occurrence in a period; a period without data is fine."""
    return {
        _CRITICAL: CustomThreshold(
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data_override=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description_override=description,
        )
    }
