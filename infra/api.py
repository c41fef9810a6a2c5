"""The REST APIs (buyers' and the seller hand-off's) and the three functions behind them, built
from the one artifact."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from fulfillment import contract
from infra.config import FulfillmentConfig
from infra.tables import Tables

# Three functions from the one artifact, each with its own role. The DynamoDB actions are
# exactly the calls each one makes (tests/infrastructure/test_stack.py pins them).
# Fulfillment: UpdateItem (customer) and the session: PutItem, or for a buyer with a license
# one TransactWriteItems of Put (session) + ConditionCheck (nothing under the key before
# license ids); the fold of an early item (under that key, or a legacy buyer's SNS one):
# GetItem (both items), then one TransactWriteItems of Update (customer) + Delete (early
# item) + Put (history); Powertools idempotency's get/put/update/delete on its own table;
# ResolveCustomer. IAM authorizes each transaction item by its item action.
CUSTOMERS_TABLE_ACTIONS = (
    "dynamodb:ConditionCheckItem",
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
)
IDEMPOTENCY_TABLE_ACTIONS = (
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
)
MARKETPLACE_ACTIONS = ("aws-marketplace:ResolveCustomer",)
# Sign-up: GetItem (session, customer), then one TransactWriteItems of Update (session) +
# Put (contact, in the contacts table) + Update (customer). A transaction is authorized per
# item by the item action (there is no TransactWriteItems IAM action); it has no
# ConditionCheck item, so no dynamodb:ConditionCheckItem. The sign-up function is the only one
# that can reach the contacts table, and it can only write to it.
SIGNUP_CUSTOMERS_TABLE_ACTIONS = ("dynamodb:GetItem", "dynamodb:UpdateItem")
SIGNUP_CONTACTS_TABLE_ACTIONS = ("dynamodb:PutItem",)
# The contacts table's customer-managed key: DynamoDB uses it on the caller's behalf, with the
# caller's permissions, to encrypt and decrypt the table key. Only through DynamoDB (ViaService):
# the role cannot call KMS with it directly.
SIGNUP_CONTACTS_KEY_ACTIONS = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey")
# Hand-off: GetItem (session, customer), nothing else.
HANDOFF_CUSTOMERS_TABLE_ACTIONS = ("dynamodb:GetItem",)

# See docs/decisions.md: cold start is CPU-bound (imports), and memory buys CPU.
MEMORY_MB = 1024
# Below API Gateway's 29 s integration timeout, above the worst case of the botocore retries.
TIMEOUT_SECONDS = 20

STAGE_NAME = "prod"
REGISTRATIONS_RESOURCE = "registrations"

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


def powertools_environment(config: FulfillmentConfig) -> dict[str, str]:
    """Powertools' own variables, the same for every function of the stack."""
    return {
        contract.POWERTOOLS_SERVICE_NAME: config.service_name,
        contract.POWERTOOLS_METRICS_NAMESPACE: config.metrics_namespace,
        # Read by Powertools alone, not a name the function package shares.
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }


def function_environment(config: FulfillmentConfig, tables: Tables) -> dict[str, str]:
    """The fulfillment function's variables (fulfillment.settings) plus Powertools' own.

    Optional values are set empty rather than left out, so the key set always equals the
    settings module's (a test compares them).
    """
    return {
        contract.CUSTOMERS_TABLE_NAME: tables.customers.table_name,
        contract.IDEMPOTENCY_TABLE_NAME: tables.idempotency.table_name,
        contract.PRODUCT_CODES: ",".join(config.product_codes),
        contract.REGISTRATION_URL: config.registration_url or "",
        contract.TRIAL_REGISTRATION_URL: config.trial_registration_url or "",
        contract.MARKETPLACE_REGION: config.marketplace_region,
        contract.SESSION_TTL_SECONDS: str(config.session_ttl_seconds),
        **powertools_environment(config),
    }


def signup_environment(config: FulfillmentConfig, tables: Tables) -> dict[str, str]:
    """The sign-up page's variables (SignupSettings) plus Powertools' own."""
    extra_fields = [field.as_json() for field in config.signup_extra_fields]
    return {
        contract.CUSTOMERS_TABLE_NAME: tables.customers.table_name,
        contract.CONTACTS_TABLE_NAME: tables.contacts.table_name,
        contract.SIGNUP_COMPLETE_URL: config.signup_complete_url or "",
        contract.SIGNUP_EXTRA_FIELDS: json.dumps(extra_fields, separators=(",", ":"))
        if extra_fields
        else "",
        **powertools_environment(config),
    }


def handoff_environment(config: FulfillmentConfig, tables: Tables) -> dict[str, str]:
    """The hand-off function's variables (HandoffSettings) plus Powertools' own."""
    return {
        contract.CUSTOMERS_TABLE_NAME: tables.customers.table_name,
        **powertools_environment(config),
    }


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """What differs between the functions; everything else is the same for all three."""

    construct_prefix: str
    handler: str
    description: str
    role_description: str
    environment: Mapping[str, str]
    statements: Sequence[iam.PolicyStatement]
    timeout_seconds: int = TIMEOUT_SECONDS


def lambda_function(
    scope: Construct, spec: FunctionSpec, *, code: lambda_.Code, retention: logs.RetentionDays
) -> lambda_.Function:
    """A function of the shared artifact with its own log group and its own role.

    The role can write to that log group and do exactly ``spec.statements``; no managed policy.
    """
    prefix = spec.construct_prefix
    log_group = logs.LogGroup(
        scope, f"{prefix}FunctionLogs", retention=retention, removal_policy=RemovalPolicy.RETAIN
    )
    role = iam.Role(
        scope,
        f"{prefix}FunctionRole",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description=spec.role_description,
    )
    log_group.grant_write(role)
    for statement in spec.statements:
        role.add_to_policy(statement)
    return lambda_.Function(
        scope,
        f"{prefix}Function",
        description=spec.description,
        runtime=lambda_.Runtime.PYTHON_3_13,
        architecture=lambda_.Architecture.ARM_64,
        handler=spec.handler,
        code=code,
        memory_size=MEMORY_MB,
        timeout=Duration.seconds(spec.timeout_seconds),
        role=role,
        environment=dict(spec.environment),
        log_group=log_group,
        logging_format=lambda_.LoggingFormat.JSON,
        tracing=lambda_.Tracing.ACTIVE,
    )


def _allow(actions: Sequence[str], resource: str) -> iam.PolicyStatement:
    return iam.PolicyStatement(actions=list(actions), resources=[resource])


class FulfillmentApi(Construct):
    """The REST API and its three functions: fulfillment URL, sign-up page, seller hand-off."""

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
        self.log_retention = retention
        # One asset: the three functions share the uploaded zip.
        code = lambda_.Code.from_asset(str(code_dir))
        customers = tables.customers.table_arn

        self.function = lambda_function(
            self,
            FunctionSpec(
                # Unprefixed: the construct ids the fulfillment function had before issue 4.
                construct_prefix="",
                handler=contract.FULFILLMENT_HANDLER,
                description="AWS Marketplace fulfillment URL: ResolveCustomer, store, hand off",
                role_description="fulfillment function: ResolveCustomer and its own two tables",
                # extra_environment: AWS_DATA_PATH, for the one function that calls Marketplace.
                environment={**function_environment(config, tables), **extra_environment},
                statements=[
                    _allow(MARKETPLACE_ACTIONS, "*"),
                    _allow(CUSTOMERS_TABLE_ACTIONS, customers),
                    _allow(IDEMPOTENCY_TABLE_ACTIONS, tables.idempotency.table_arn),
                ],
            ),
            code=code,
            retention=retention,
        )
        # The built-in sign-up page exists only where buyers are sent to it: with the seller's
        # own site (registrationUrl) nobody is, and a live /signup would let anyone holding a
        # registration id write contacts and mark the customer signed up.
        self.signup_function: lambda_.Function | None = None
        if config.registration_url is None:
            self.signup_function = self._signup_function(config, tables, code, retention)
        self.handoff_function = lambda_function(
            self,
            FunctionSpec(
                construct_prefix="Handoff",
                handler=contract.HANDOFF_HANDLER,
                description="Seller hand-off: the customer behind a registration id (IAM)",
                role_description="hand-off function: reads sessions and customers only",
                environment=handoff_environment(config, tables),
                statements=[_allow(HANDOFF_CUSTOMERS_TABLE_ACTIONS, customers)],
            ),
            code=code,
            retention=retention,
        )
        self.functions = tuple(
            f for f in (self.function, self.signup_function, self.handoff_function) if f
        )

        self.api = self._rest_api(
            "Api",
            "AccessLogs",
            config,
            retention,
            name=f"{config.stack_name}-fulfillment",
            description="AWS Marketplace SaaS fulfillment URL",
            # CloudWatch's account-level role for API Gateway logging: one per account.
            cloud_watch_role=True,
            disable_execute_api_endpoint=bool(config.domain_name),
        )
        # The seller's backend gets JSON from API Gateway too, buyers a page: gateway
        # responses are per REST API, so the hand-off has an API of its own.
        self.handoff_api = self._rest_api(
            "HandoffApi",
            "HandoffAccessLogs",
            config,
            retention,
            name=f"{config.stack_name}-handoff",
            description="Seller hand-off: GET /registrations/{id} (IAM)",
            cloud_watch_role=False,
            disable_execute_api_endpoint=False,
        )
        account = self.api.node.find_child("Account")
        self.handoff_api.deployment_stage.node.add_dependency(account)
        for page in contract.GATEWAY_PAGES:
            body = contract.gateway_page_html(page, contract.GATEWAY_REQUEST_ID)
            self.api.add_gateway_response(
                f"{page.response_type.title().replace('_', '')}Page",
                type=apigw.ResponseType.of(page.response_type),
                response_headers={
                    name: f"'{value}'"
                    for name, value in {
                        **contract.SECURITY_HEADERS,
                        "Content-Security-Policy": contract.GATEWAY_PAGE_CSP,
                        "Content-Type": "text/html; charset=utf-8",
                    }.items()
                },
                # Whatever the Accept header selects, the same page.
                templates={"application/json": body, "text/html": body},
            )
        validator = self.api.add_request_validator(
            "RequestValidator", validate_request_body=True, validate_request_parameters=True
        )
        # The buyer-facing methods are public by design (stack.py acknowledges that to
        # cdk-nag); the hand-off is for the seller's backend only, signed with SigV4.
        self.public_methods: list[apigw.Method] = []
        fulfillment = _integration(self.function)
        for method in ("GET", "POST"):
            self.public_methods.append(
                self.api.root.add_method(method, fulfillment, request_validator=validator)
            )
        self.signup_methods: list[apigw.Method] = []
        if self.signup_function is not None:
            signup_resource = self.api.root.add_resource("signup")
            signup = _integration(self.signup_function)
            self.signup_methods = [
                signup_resource.add_method(method, signup, request_validator=validator)
                for method in ("GET", "POST")
            ]
        self.public_methods += self.signup_methods
        registration = self.handoff_api.root.add_resource(REGISTRATIONS_RESOURCE).add_resource(
            "{id}"
        )
        self.handoff_method = registration.add_method(
            "GET",
            _integration(self.handoff_function),
            authorization_type=apigw.AuthorizationType.IAM,
            request_validator=self.handoff_api.add_request_validator(
                "RequestValidator", validate_request_body=True, validate_request_parameters=True
            ),
            request_parameters={"method.request.path.id": True},
        )
        # What the seller's backend role needs: execute-api:Invoke on this ARN.
        self.handoff_invoke_arn = self.handoff_api.arn_for_execute_api(
            "GET", f"/{REGISTRATIONS_RESOURCE}/*", STAGE_NAME
        )
        self.stages = (self.api.deployment_stage, self.handoff_api.deployment_stage)

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
            self.domain_target: str | None = domain.domain_name_alias_domain_name
            self.url = f"https://{config.domain_name}/"
        else:
            self.domain_target = None
        # On its own API's execute-api host, custom domain or not.
        self.registrations_endpoint = f"{self.handoff_api.url}{REGISTRATIONS_RESOURCE}/{{id}}"

    def _rest_api(
        self,
        construct_id: str,
        access_logs_id: str,
        config: FulfillmentConfig,
        retention: logs.RetentionDays,
        *,
        name: str,
        description: str,
        cloud_watch_role: bool,
        disable_execute_api_endpoint: bool,
    ) -> apigw.RestApi:
        access_logs = logs.LogGroup(
            self, access_logs_id, retention=retention, removal_policy=RemovalPolicy.RETAIN
        )
        return apigw.RestApi(
            self,
            construct_id,
            rest_api_name=name,
            description=description,
            endpoint_types=[apigw.EndpointType.REGIONAL],
            cloud_watch_role=cloud_watch_role,
            cloud_watch_role_removal_policy=RemovalPolicy.DESTROY if cloud_watch_role else None,
            disable_execute_api_endpoint=disable_execute_api_endpoint,
            deploy_options=apigw.StageOptions(
                stage_name=STAGE_NAME,
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

    def _signup_function(
        self,
        config: FulfillmentConfig,
        tables: Tables,
        code: lambda_.Code,
        retention: logs.RetentionDays,
    ) -> lambda_.Function:
        return lambda_function(
            self,
            FunctionSpec(
                construct_prefix="Signup",
                handler=contract.SIGNUP_HANDLER,
                description="Built-in sign-up page: contact details for a registration",
                role_description="sign-up function: sessions and customers, writes contacts",
                environment=signup_environment(config, tables),
                statements=[
                    _allow(SIGNUP_CUSTOMERS_TABLE_ACTIONS, tables.customers.table_arn),
                    _allow(SIGNUP_CONTACTS_TABLE_ACTIONS, tables.contacts.table_arn),
                    iam.PolicyStatement(
                        actions=list(SIGNUP_CONTACTS_KEY_ACTIONS),
                        resources=[tables.contacts_key.key_arn],
                        conditions={
                            "StringEquals": {
                                "kms:ViaService": f"dynamodb.{Stack.of(self).region}"
                                f".{Stack.of(self).url_suffix}"
                            }
                        },
                    ),
                ],
            ),
            code=code,
            retention=retention,
        )


def _integration(function: lambda_.IFunction) -> apigw.LambdaIntegration:
    return apigw.LambdaIntegration(function, proxy=True, allow_test_invoke=False)
