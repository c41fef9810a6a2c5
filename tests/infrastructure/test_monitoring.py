"""The monitoring construct: its dashboard, alarms and topic, and the metric contract it reads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Acknowledgment, App, Stack, Validations
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Template
from cdk_nag import AwsSolutionsChecks

from fulfillment import contract
from fulfillment.contract import MarketplaceErrorCode, MetricName, RejectionReason
from fulfillment.core import observability
from fulfillment.registration import marketplace
from fulfillment.registration.errors import RejectedSubmissionError
from infra.monitoring import Monitoring

NAMESPACE = "FulfillmentTest"
SERVICE = "fulfillment-test"
DASHBOARD = "fulfillment-test-dashboard"
EMAIL = "oncall@example.com"
TABLE_IDS = ("Customers", "Idempotency")

# Findings on the test's own API and function, which stand in for the real ones.
FIXTURE_FINDINGS = {
    "Fn": ("AwsSolutions-L1",),
    "Api": (
        "AwsSolutions-APIG1",
        "AwsSolutions-APIG2",
        "AwsSolutions-APIG3",
        "AwsSolutions-APIG4",
        "AwsSolutions-APIG6",
        "AwsSolutions-COG4",
    ),
}


@dataclass(frozen=True)
class Synthesized:
    stack: Stack
    monitoring: Monitoring
    template: dict[str, Any]

    def resources(self, kind: str) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resource
            for logical_id, resource in self.template["Resources"].items()
            if resource["Type"] == kind
        }


def _fixture_stack(app: App, stack_id: str, alarm_email: str | None) -> tuple[Stack, Monitoring]:
    stack = Stack(app, stack_id)
    # A role without AWS-managed policies and no API Gateway account role: fewer findings
    # that have nothing to do with monitoring.
    role = iam.Role(stack, "FnRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    function = lambda_.Function(
        stack,
        "Fn",
        runtime=lambda_.Runtime.PYTHON_3_13,
        handler="index.handler",
        code=lambda_.Code.from_inline("def handler(event, context):\n    return {}\n"),
        role=role,
    )
    api = apigateway.RestApi(stack, "Api", rest_api_name="fulfillment-test", cloud_watch_role=False)
    api.root.add_method("GET", apigateway.MockIntegration())
    tables = [
        dynamodb.TableV2(
            stack,
            table_id,
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
        )
        for table_id in TABLE_IDS
    ]
    for scope, rules in ((function, FIXTURE_FINDINGS["Fn"]), (api, FIXTURE_FINDINGS["Api"])):
        Validations.of(scope).acknowledge(
            *(Acknowledgment(id=f"AwsSolutions::{rule}", reason="test fixture") for rule in rules)
        )
    monitoring = Monitoring(
        stack,
        "Monitoring",
        api=api,
        function=function,
        tables=tables,
        namespace=NAMESPACE,
        service=SERVICE,
        alarm_email=alarm_email,
        dashboard_name=DASHBOARD,
    )
    return stack, monitoring


@pytest.fixture(scope="module")
def with_email() -> Synthesized:
    stack, monitoring = _fixture_stack(App(), "MonitoringTest", EMAIL)
    return Synthesized(stack, monitoring, dict(Template.from_stack(stack).to_json()))


@dataclass(frozen=True)
class NagRun:
    synthesized: Synthesized
    report: dict[str, Any]


@pytest.fixture(scope="module")
def nag_run(tmp_path_factory: pytest.TempPathFactory) -> NagRun:
    """The second synthesis: no e-mail, with cdk-nag's AwsSolutions checks on the whole app."""
    outdir = tmp_path_factory.mktemp("cdk.out")
    app = App(outdir=str(outdir))
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    stack, monitoring = _fixture_stack(app, "MonitoringNoEmail", None)
    # Raises ValidationFailed on any finding that was not acknowledged.
    assembly = app.synth()
    template = assembly.get_stack_by_name(stack.stack_name).template
    report = json.loads((Path(outdir) / "validation-report.json").read_text())
    return NagRun(Synthesized(stack, monitoring, template), report)


# -- the metric contract ------------------------------------------------------------------


def test_failure_codes_are_every_code_that_is_not_the_buyers_fault() -> None:
    buyer_codes = {
        code
        for code, error in marketplace._ERRORS.items()
        if issubclass(error, RejectedSubmissionError)
    }
    assert buyer_codes == {"InvalidTokenException", "ExpiredTokenException"}
    assert set(contract.MARKETPLACE_FAILURE_CODES) == set(MarketplaceErrorCode) - buyer_codes


def _emitted_dimension_sets(output: str) -> list[tuple[str, frozenset[str]]]:
    emitted = []
    for line in output.splitlines():
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                for dimensions in directive["Dimensions"]:
                    emitted.append((metric["Name"], frozenset(dimensions)))
    return emitted


def test_function_emits_the_dimension_sets_the_dashboard_queries(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a clean metric set
    observability.metrics.clear_metrics()
    capsys.readouterr()

    # When the function counts one plain metric and one split by each bounded dimension
    observability.count(MetricName.REGISTRATION_SUCCEEDED)
    observability.metrics.flush_metrics()
    observability.count_by(
        MetricName.REGISTRATION_REJECTED,
        contract.REASON_DIMENSION,
        RejectionReason.EXPIRED_TOKEN,
    )
    observability.count_by(
        MetricName.MARKETPLACE_ERROR,
        contract.ERROR_CODE_DIMENSION,
        MarketplaceErrorCode.DISABLED_API,
    )

    # Then each has exactly the dimension set the dashboard and alarms use
    assert _emitted_dimension_sets(capsys.readouterr().out) == [
        (MetricName.REGISTRATION_SUCCEEDED, frozenset({contract.SERVICE_DIMENSION})),
        (
            MetricName.REGISTRATION_REJECTED,
            frozenset({contract.REASON_DIMENSION, contract.SERVICE_DIMENSION}),
        ),
        (
            MetricName.MARKETPLACE_ERROR,
            frozenset({contract.ERROR_CODE_DIMENSION, contract.SERVICE_DIMENSION}),
        ),
    ]


# -- the dashboard ------------------------------------------------------------------------


def _dashboard_body(synthesized: Synthesized) -> dict[str, Any]:
    (dashboard,) = synthesized.resources("AWS::CloudWatch::Dashboard").values()
    parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"][1]
    # Tokens (region, function name, stage) sit inside JSON strings: a placeholder keeps it JSON.
    body: dict[str, Any] = json.loads(
        "".join(part if isinstance(part, str) else "TOKEN" for part in parts)
    )
    return body


def _graphed_metrics(body: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, str], str]]:
    """(namespace, name, dimensions, statistic) of every metric the dashboard draws."""
    for widget in body["widgets"]:
        for entry in widget.get("properties", {}).get("metrics", []):
            if not isinstance(entry[0], str):
                continue  # a math expression
            namespace, name, *rest = entry
            options = rest.pop() if rest and isinstance(rest[-1], dict) else {}
            yield (
                namespace,
                name,
                dict(zip(rest[::2], rest[1::2], strict=True)),
                options.get("stat", "Average"),
            )


def test_there_is_exactly_one_dashboard_with_the_given_name(with_email: Synthesized) -> None:
    dashboards = with_email.resources("AWS::CloudWatch::Dashboard")
    assert [d["Properties"]["DashboardName"] for d in dashboards.values()] == [DASHBOARD]


def test_dashboard_draws_every_custom_metric_with_its_exact_dimension_set(
    with_email: Synthesized,
) -> None:
    drawn = {
        (name, frozenset(dimensions.items()))
        for namespace, name, dimensions, _ in _graphed_metrics(_dashboard_body(with_email))
        if namespace == NAMESPACE
    }
    service = (contract.SERVICE_DIMENSION, SERVICE)
    expected = {
        (name, frozenset({service}))
        for name in (
            MetricName.REGISTRATION_SUCCEEDED,
            MetricName.NEW_CUSTOMER,
            MetricName.RETURNING_CUSTOMER,
            MetricName.DUPLICATE_SUBMISSION,
            MetricName.SIGNUP_COMPLETED,
        )
    }
    expected |= {
        (
            MetricName.REGISTRATION_REJECTED,
            frozenset({service, (contract.REASON_DIMENSION, reason)}),
        )
        for reason in contract.RejectionReason
    }
    expected |= {
        (MetricName.SIGNUP_REJECTED, frozenset({service, (contract.REASON_DIMENSION, reason)}))
        for reason in contract.SignupRejectionReason
    }
    expected |= {
        (MetricName.MARKETPLACE_ERROR, frozenset({service, (contract.ERROR_CODE_DIMENSION, code)}))
        for code in MarketplaceErrorCode
    }
    expected.add(
        (contract.COLD_START, frozenset({service, (contract.FUNCTION_NAME_DIMENSION, "TOKEN")}))
    )
    assert drawn == expected


def test_registrations_per_minute_is_a_one_minute_sum(with_email: Synthesized) -> None:
    body = _dashboard_body(with_email)
    (widget,) = (
        w for w in body["widgets"] if w["properties"].get("title") == "Registrations per minute"
    )
    ((*_, options),) = widget["properties"]["metrics"]
    assert options["period"] == 60
    assert options["stat"] == "Sum"


def test_dashboard_shows_api_function_and_table_health(with_email: Synthesized) -> None:
    drawn = {
        (namespace, name, stat)
        for namespace, name, _, stat in _graphed_metrics(_dashboard_body(with_email))
    }
    for percentile in ("p50", "p90", "p99"):
        assert ("AWS/ApiGateway", "Latency", percentile) in drawn
        assert ("AWS/Lambda", "Duration", percentile) in drawn
    names = {(namespace, name) for namespace, name, _ in drawn}
    assert {("AWS/ApiGateway", "4XXError"), ("AWS/ApiGateway", "5XXError")} <= names
    assert {
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("AWS/Lambda", "ConcurrentExecutions"),
    } <= names
    assert {("AWS/DynamoDB", "ReadThrottleEvents"), ("AWS/DynamoDB", "WriteThrottleEvents")} <= (
        names
    )


def test_dashboard_url_names_the_dashboard(with_email: Synthesized) -> None:
    url = with_email.stack.resolve(with_email.monitoring.dashboard_url)
    parts = url["Fn::Join"][1]
    assert parts[0] == "https://"
    assert parts[-1].endswith(f"#dashboards:name={DASHBOARD}")


# -- the alarms ---------------------------------------------------------------------------

EXPECTED_ALARMS = {
    "Api-Fault-Rate-Critical",
    "Api-Latency-P90-Warning",
    "Function-Fault-Count-Critical",
    "Registration-Marketplace-DisabledApi-Critical",
    "Registration-Marketplace-FailureRate-Critical",
    *(
        f"Table-{table}-{kind}-Throttled-Events-Critical"
        for table in TABLE_IDS
        for kind in ("Read", "Write")
    ),
}


def _alarms_by_suffix(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    prefix = f"{synthesized.stack.stack_name}-"
    alarms = {}
    for alarm in synthesized.resources("AWS::CloudWatch::Alarm").values():
        name = alarm["Properties"]["AlarmName"]
        assert name.startswith(prefix)
        alarms[name.removeprefix(prefix)] = alarm["Properties"]
    return alarms


def test_the_expected_alarms_exist_with_a_stable_prefix(with_email: Synthesized) -> None:
    assert set(_alarms_by_suffix(with_email)) == EXPECTED_ALARMS
    assert len(with_email.monitoring.alarms) == len(EXPECTED_ALARMS)


def test_every_alarm_notifies_the_topic_and_explains_itself(with_email: Synthesized) -> None:
    (topic_id,) = with_email.resources("AWS::SNS::Topic")
    for name, alarm in _alarms_by_suffix(with_email).items():
        assert alarm["AlarmActions"] == [{"Ref": topic_id}], name
        assert alarm["OKActions"] == [{"Ref": topic_id}], name
        assert alarm["ActionsEnabled"] is True, name
        assert "Check first" in alarm["AlarmDescription"], name
        assert alarm["TreatMissingData"] == "notBreaching", name


def test_disabled_api_alarm_fires_on_the_first_disabled_api_error(with_email: Synthesized) -> None:
    alarm = _alarms_by_suffix(with_email)["Registration-Marketplace-DisabledApi-Critical"]
    ((query,),) = [alarm["Metrics"]]
    assert query["MetricStat"]["Metric"] == {
        "Namespace": NAMESPACE,
        "MetricName": MetricName.MARKETPLACE_ERROR,
        "Dimensions": [
            {"Name": contract.ERROR_CODE_DIMENSION, "Value": MarketplaceErrorCode.DISABLED_API},
            {"Name": contract.SERVICE_DIMENSION, "Value": SERVICE},
        ],
    }
    assert query["MetricStat"]["Stat"] == "Sum"
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (
        1,
        "GreaterThanOrEqualToThreshold",
    )
    assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (1, 1)


def test_marketplace_failure_rate_counts_only_marketplace_side_failures(
    with_email: Synthesized,
) -> None:
    alarm = _alarms_by_suffix(with_email)["Registration-Marketplace-FailureRate-Critical"]
    queried = [query["MetricStat"]["Metric"] for query in alarm["Metrics"] if "MetricStat" in query]
    codes = sorted(
        dimension["Value"]
        for metric in queried
        if metric["MetricName"] == MetricName.MARKETPLACE_ERROR
        for dimension in metric["Dimensions"]
        if dimension["Name"] == contract.ERROR_CODE_DIMENSION
    )
    assert codes == sorted(contract.MARKETPLACE_FAILURE_CODES)
    assert [m["MetricName"] for m in queried].count(MetricName.REGISTRATION_SUCCEEDED) == 1
    (returned,) = [query for query in alarm["Metrics"] if query["ReturnData"]]
    assert returned["Expression"].startswith("IF(failures >= 3, 100 * failures /")
    assert alarm["Threshold"] == 10


def test_api_5xx_alarm_is_a_rate_over_enough_requests(with_email: Synthesized) -> None:
    alarm = _alarms_by_suffix(with_email)["Api-Fault-Rate-Critical"]
    stats = {
        query["Id"]: (query["MetricStat"]["Metric"]["MetricName"], query["MetricStat"]["Stat"])
        for query in alarm["Metrics"]
        if "MetricStat" in query
    }
    assert stats == {"metric": ("5XXError", "Average"), "sampleCount": ("5XXError", "SampleCount")}
    assert alarm["Threshold"] == 0.01


def test_throttle_alarms_watch_each_table(with_email: Synthesized) -> None:
    tables = with_email.resources("AWS::DynamoDB::GlobalTable")
    watched = set()
    for suffix, alarm in _alarms_by_suffix(with_email).items():
        if suffix.startswith("Table-"):
            for query in alarm["Metrics"]:
                if "MetricStat" in query:
                    metric = query["MetricStat"]["Metric"]
                    (dimension,) = metric["Dimensions"]
                    watched.add((dimension["Value"]["Ref"], metric["MetricName"]))
    assert watched == {
        (table, name) for table in tables for name in ("ReadThrottleEvents", "WriteThrottleEvents")
    }


# -- the topic ----------------------------------------------------------------------------


def test_topic_is_encrypted_with_a_rotated_key_cloudwatch_may_use(with_email: Synthesized) -> None:
    ((key_id, key),) = with_email.resources("AWS::KMS::Key").items()
    ((_, topic),) = with_email.resources("AWS::SNS::Topic").items()
    assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert key["Properties"]["EnableKeyRotation"] is True
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    assert any(
        statement.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
        and {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(statement["Action"])
        for statement in statements
    )


def test_topic_refuses_publishing_without_tls(with_email: Synthesized) -> None:
    (policy,) = with_email.resources("AWS::SNS::TopicPolicy").values()
    assert any(
        statement["Effect"] == "Deny"
        and statement.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    )


def test_email_subscription_only_when_an_address_is_given(
    with_email: Synthesized, nag_run: NagRun
) -> None:
    subscriptions = [
        s["Properties"] for s in with_email.resources("AWS::SNS::Subscription").values()
    ]
    assert [(s["Protocol"], s["Endpoint"]) for s in subscriptions] == [("email", EMAIL)]
    assert nag_run.synthesized.resources("AWS::SNS::Subscription") == {}
    assert nag_run.synthesized.resources("AWS::CloudWatch::Alarm")


# -- cdk-nag ------------------------------------------------------------------------------


def test_nag_finds_nothing_in_monitoring_and_each_acknowledgment_is_used(nag_run: NagRun) -> None:
    # The synthesis in the fixture did not raise: nothing unacknowledged anywhere.
    (plugin,) = nag_run.report["pluginReports"]
    assert plugin["violations"] == []
    suppressed = {
        (violation["acknowledgedAt"].split("/")[-1], violation["ruleName"])
        for violation in plugin["suppressedViolations"]
    }
    assert suppressed == {
        (scope, rule) for scope, rules in FIXTURE_FINDINGS.items() for rule in rules
    }
