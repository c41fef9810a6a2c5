"""The fulfillment function and the REST API in front of it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config import FulfillmentConfig
from infra.tables import Tables

HANDLER = "fulfillment.api.lambda_handler"
# Exactly the calls the function makes: UpdateItem (customer) and PutItem (session) on the
# customers table; Powertools idempotency's get/put/update/delete on its own table.
CUSTOMERS_TABLE_ACTIONS = ("dynamodb:PutItem", "dynamodb:UpdateItem")
IDEMPOTENCY_TABLE_ACTIONS = (
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
)
MARKETPLACE_ACTIONS = ("aws-marketplace:ResolveCustomer",)
# See docs/decisions.md: cold start is CPU-bound (imports), and memory buys CPU.
MEMORY_MB = 1024
# Below API Gateway's 29 s integration timeout, above the worst case of the botocore retries.
TIMEOUT_SECONDS = 20

_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
    2922: logs.RetentionDays.EIGHT_YEARS,
    3288: logs.RetentionDays.NINE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


def function_environment(config: FulfillmentConfig, tables: Tables) -> dict[str, str]:
    """The function's environment: the settings module's variables plus Powertools' own."""
    return {
        "CUSTOMERS_TABLE_NAME": tables.customers.table_name,
        "IDEMPOTENCY_TABLE_NAME": tables.idempotency.table_name,
        "PRODUCT_CODES": ",".join(config.product_codes),
        "REGISTRATION_URL": config.registration_url,
        "TRIAL_REGISTRATION_URL": config.trial_registration_url or "",
        "MARKETPLACE_REGION": config.marketplace_region,
        "SESSION_TTL_SECONDS": str(config.session_ttl_seconds),
        "POWERTOOLS_SERVICE_NAME": config.service_name,
        "POWERTOOLS_METRICS_NAMESPACE": config.metrics_namespace,
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }


class FulfillmentApi(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: FulfillmentConfig,
        tables: Tables,
        code_dir: Path,
        extra_environment: Mapping[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        retention = _RETENTION[config.log_retention_days]

        function_logs = logs.LogGroup(
            self, "FunctionLogs", retention=retention, removal_policy=RemovalPolicy.RETAIN
        )
        role = iam.Role(
            self,
            "FunctionRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="fulfillment function: ResolveCustomer and its own two tables only",
        )
        function_logs.grant_write(role)
        role.add_to_policy(iam.PolicyStatement(actions=list(MARKETPLACE_ACTIONS), resources=["*"]))
        role.add_to_policy(
            iam.PolicyStatement(
                actions=list(CUSTOMERS_TABLE_ACTIONS), resources=[tables.customers.table_arn]
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=list(IDEMPOTENCY_TABLE_ACTIONS), resources=[tables.idempotency.table_arn]
            )
        )

        self.function = lambda_.Function(
            self,
            "Function",
            description="AWS Marketplace fulfillment URL: ResolveCustomer, store, hand off",
            runtime=lambda_.Runtime.PYTHON_3_13,
            architecture=lambda_.Architecture.ARM_64,
            handler=HANDLER,
            code=lambda_.Code.from_asset(str(code_dir)),
            memory_size=MEMORY_MB,
            timeout=Duration.seconds(TIMEOUT_SECONDS),
            role=role,
            environment={**function_environment(config, tables), **extra_environment},
            log_group=function_logs,
            logging_format=lambda_.LoggingFormat.JSON,
            tracing=lambda_.Tracing.ACTIVE,
        )

        access_logs = logs.LogGroup(
            self, "AccessLogs", retention=retention, removal_policy=RemovalPolicy.RETAIN
        )
        self.api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=f"{config.stack_name}-fulfillment",
            description="AWS Marketplace SaaS fulfillment URL",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.DESTROY,
            disable_execute_api_endpoint=bool(config.domain_name),
            deploy_options=apigw.StageOptions(
                stage_name="prod",
                # The standard fields carry the resource path, never the query string or body.
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=False,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=False,
                ),
                throttling_rate_limit=config.throttling_rate_limit,
                throttling_burst_limit=config.throttling_burst_limit,
                tracing_enabled=True,
                metrics_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                # Data tracing would write request bodies, and with them the token, to logs.
                data_trace_enabled=False,
            ),
        )
        validator = self.api.add_request_validator(
            "RequestValidator", validate_request_body=True, validate_request_parameters=True
        )
        integration = apigw.LambdaIntegration(self.function, proxy=True, allow_test_invoke=False)
        for method in ("GET", "POST"):
            self.api.root.add_method(method, integration, request_validator=validator)

        self.url = self.api.url
        if config.domain_name and config.certificate_arn:
            domain = apigw.DomainName(
                self,
                "Domain",
                domain_name=config.domain_name,
                certificate=acm.Certificate.from_certificate_arn(
                    self, "Certificate", config.certificate_arn
                ),
                endpoint_type=apigw.EndpointType.REGIONAL,
                security_policy=apigw.SecurityPolicy.TLS_1_2,
            )
            domain.add_base_path_mapping(self.api)
            self.domain_target = domain.domain_name_alias_domain_name
            self.url = f"https://{config.domain_name}/"
        else:
            self.domain_target = None
