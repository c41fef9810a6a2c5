"""The fulfillment stack: tables, API + functions, web firewall, monitoring, recovery,
lifecycle."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import CfnOutput, Environment, Stack
from constructs import Construct, IConstruct

from fulfillment import contract
from infra import recovery
from infra.api import FulfillmentApi, powertools_environment
from infra.config import FulfillmentConfig
from infra.events import RegistrationEvents
from infra.lifecycle import MAX_RECEIVE_COUNT, OLDEST_MESSAGE_AGE, Lifecycle
from infra.metering import Metering
from infra.monitoring import Monitoring
from infra.nag import RUNTIME_REASON, Acknowledgement, acknowledge, default_policy
from infra.packaging import DATA_PATH_ENV
from infra.recovery import RegistrationRecovery
from infra.tables import Tables
from infra.waf import WebFirewall


class FulfillmentStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: FulfillmentConfig,
        code_dir: Path,
        env: Environment | None = None,
        description: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id, env=env, description=description)
        self.acknowledgements: list[Acknowledgement] = []

        tables = Tables(self, "Tables")
        api = FulfillmentApi(
            self,
            "Fulfillment",
            config=config,
            tables=tables,
            code_dir=code_dir,
            extra_environment=DATA_PATH_ENV,
        )
        if config.waf_enabled:
            WebFirewall(
                self,
                "Firewall",
                stage_arns=[stage.stage_arn for stage in api.stages],
                rate_limit=config.waf_rate_limit,
            )
        else:
            for stage in api.stages:
                self._acknowledge(
                    stage,
                    "AwsSolutions-APIG3",
                    "WAF turned off by the operator (context wafEnabled=false)",
                )
        monitoring = Monitoring(
            self,
            "Monitoring",
            api=api.api,
            function=api.function,
            tables=[tables.customers, tables.idempotency, tables.contacts],
            namespace=config.metrics_namespace,
            service=config.service_name,
            alarm_email=config.alarm_email,
            dashboard_name=f"{config.stack_name}-fulfillment",
            other_functions={
                stem: function
                for stem, function in (
                    ("Signup", api.signup_function),
                    ("Handoff", api.handoff_function),
                )
                if function is not None
            },
        )
        powertools = powertools_environment(config)
        events = RegistrationEvents(
            self,
            "Events",
            table=tables.customers,
            code_dir=code_dir,
            environment_extra=powertools,
            log_retention=api.log_retention,
            notification_email=config.notification_email,
            stack_name=config.stack_name,
            alarm_topic=monitoring.topic,
        )
        self.acknowledgements.extend(events.acknowledgements)
        self.recovery = RegistrationRecovery(
            self,
            "Recovery",
            table=tables.customers,
            idempotency_table=tables.idempotency,
            code_dir=code_dir,
            environment_extra=powertools,
            log_retention=api.log_retention,
        )
        self.recovery.connect(api.function)
        self.acknowledgements.extend(self.recovery.acknowledgements)
        monitoring.monitor_recovery(
            function=self.recovery.function,
            queue=self.recovery.queue,
            dead_letter_queue=self.recovery.dead_letter_queue,
            oldest_message_age=recovery.OLDEST_MESSAGE_AGE,
            max_receive_count=recovery.MAX_RECEIVE_COUNT,
        )
        self.lifecycle: Lifecycle | None = None
        if config.lifecycle_enabled:
            self.lifecycle = Lifecycle(
                self,
                "Lifecycle",
                table=tables.customers,
                product_codes=config.product_codes,
                legacy_sns_product_codes=config.legacy_sns_product_codes,
                code_dir=code_dir,
                # GetEntitlements with a LICENSE_ARN filter: the shipped, current model.
                environment_extra={
                    **powertools,
                    **DATA_PATH_ENV,
                    contract.SUBSCRIPTION_PRODUCT_CODES: ",".join(
                        config.subscription_product_codes
                    ),
                },
                log_retention=api.log_retention,
            )
            self.acknowledgements.extend(self.lifecycle.acknowledgements)
            monitoring.monitor_lifecycle(
                function=self.lifecycle.function,
                queue=self.lifecycle.queue,
                dead_letter_queue=self.lifecycle.dead_letter_queue,
                oldest_message_age=OLDEST_MESSAGE_AGE,
                max_receive_count=MAX_RECEIVE_COUNT,
            )
        self.metering: Metering | None = None
        if config.metering_dimensions:
            self.metering = Metering(
                self,
                "Metering",
                customers=tables.customers,
                handoff_api=api.handoff_api,
                product_codes=config.product_codes,
                dimensions=config.metering_dimensions,
                dry_run=config.metering_dry_run,
                code_dir=code_dir,
                # BatchMeterUsage with LicenseArn and QuantityAsDecimal: the shipped model.
                environment_extra={**powertools, **DATA_PATH_ENV},
                log_retention=api.log_retention,
            )
            self.acknowledgements.extend(self.metering.acknowledgements)
            monitoring.monitor_metering(
                intake=self.metering.intake_function,
                run=self.metering.run_function,
                dead_letter_queue=self.metering.dead_letter_queue,
                dimensions=config.metering_dimensions,
            )
            CfnOutput(
                self,
                "UsageEndpoint",
                value=self.metering.usage_endpoint,
                description="POST usage reports here, signed with SigV4 (docs/metering.md)",
            )
            CfnOutput(
                self,
                "UsageInvokeArn",
                value=self.metering.usage_invoke_arn,
                description="Grant your backend's role execute-api:Invoke on this ARN",
            )
        self._acknowledge_by_design(api)

        CfnOutput(
            self,
            "FulfillmentUrl",
            value=api.url,
            description="Paste into the AWS Marketplace Management Portal as the fulfillment URL",
        )
        if api.domain_target is not None:
            CfnOutput(
                self,
                "CustomDomainTarget",
                value=api.domain_target,
                description="Point the custom domain's DNS (alias or CNAME) here",
            )
        CfnOutput(
            self,
            "RegistrationsEndpoint",
            value=api.registrations_endpoint,
            description="Seller hand-off: GET with SigV4 (service execute-api), {id} = the "
            "registration id your sign-up page received (docs/handoff.md)",
        )
        CfnOutput(
            self,
            "RegistrationsInvokeArn",
            value=api.handoff_invoke_arn,
            description="Allow execute-api:Invoke on this ARN in your seller backend's IAM policy",
        )
        CfnOutput(self, "DashboardUrl", value=monitoring.dashboard_url)
        CfnOutput(self, "AlarmTopicArn", value=monitoring.topic.topic_arn)
        CfnOutput(self, "CustomersTableName", value=tables.customers.table_name)
        CfnOutput(
            self,
            "ContactsTableName",
            value=tables.contacts.table_name,
            description="The buyers' contact details (docs/signup.md): grant your backend "
            "GetItem here and kms:Decrypt on its key",
        )
        CfnOutput(
            self,
            "EventBusName",
            value=events.bus.event_bus_name,
            description="Subscribe your provisioning to source fulfillment.registration here",
        )
        CfnOutput(self, "NotificationTopicArn", value=events.topic.topic_arn)
        CfnOutput(
            self,
            "RecoveryDeadLetterQueueArn",
            value=self.recovery.dead_letter_queue.queue_arn,
            description="Registrations that could not be recorded after 5 attempts: paying "
            "customers not yet in the customers table (docs/reliability.md)",
        )
        if self.lifecycle is not None:
            CfnOutput(
                self,
                "LifecycleDeadLetterQueueArn",
                value=self.lifecycle.dead_letter_queue.queue_arn,
                description="Lifecycle notifications that failed 5 times (docs/runbook.md)",
            )
            CfnOutput(self, "LifecycleQueueArn", value=self.lifecycle.queue.queue_arn)

    def _acknowledge(self, construct: IConstruct, rule_id: str, reason: str) -> None:
        self.acknowledgements.append(acknowledge(construct, rule_id, reason))

    def _acknowledge_by_design(self, api: FulfillmentApi) -> None:
        for method in api.public_methods:
            self._acknowledge(
                method,
                "AwsSolutions-APIG4",
                "Opened by buyers' browsers straight from AWS Marketplace (the fulfillment URL, "
                "then the built-in sign-up page): it cannot require authorization; the "
                "registration token, then the registration id and its CSRF token, are the "
                "credentials.",
            )
            self._acknowledge(
                method,
                "AwsSolutions-COG4",
                "Public by design (see APIG4): buyers have no Cognito identity when they arrive.",
            )
        self._acknowledge(
            api.handoff_method,
            "AwsSolutions-COG4",
            "IAM-authorized for the seller's backend (SigV4, execute-api:Invoke on this route "
            "only): a machine caller in the seller's AWS account, no Cognito user.",
        )
        for function in api.functions:
            policy = default_policy(function)
            marketplace = (
                ", and aws-marketplace:ResolveCustomer supports no resource ARNs"
                if function is api.function
                else ""
            )
            self._acknowledge(
                policy,
                "AwsSolutions-IAM5[Resource::*]",
                f"X-Ray's PutTraceSegments/PutTelemetryRecords (active tracing) require '*'"
                f"{marketplace}; every DynamoDB action is scoped to its table ARN.",
            )
            self._acknowledge(
                function,
                "AwsSolutions-L1",
                RUNTIME_REASON,
            )
        cloudwatch_role = api.api.node.try_find_child("CloudWatchRole")
        assert cloudwatch_role is not None
        self._acknowledge(
            cloudwatch_role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs]",
            "API Gateway's account-level logging role: AWS's managed policy is the documented way "
            "to let API Gateway write execution logs (required by APIG6).",
        )
