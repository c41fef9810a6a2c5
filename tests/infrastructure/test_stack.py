"""The synthesized stack: resources, key properties, IAM, WAF, packaging hook-up, nag, lint.

Synthesizing takes seconds, so the module synthesizes once and every test reads the result.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

from fulfillment.settings import ENVIRONMENT_KEYS
from infra.api import CUSTOMERS_TABLE_ACTIONS, IDEMPOTENCY_TABLE_ACTIONS, MARKETPLACE_ACTIONS
from infra.app import build_app
from infra.schema import CUSTOMERS, IDEMPOTENCY, create_table_request
from infra.stack import FulfillmentStack

CONTEXT = {
    "productCodes": "prod-abc123,prod-def456",
    "registrationUrl": "https://app.example.io/aws",
    "trialRegistrationUrl": "https://app.example.io/trial",
    "alarmEmail": "oncall@example.io",
}


class Synth:
    def __init__(self, stack: FulfillmentStack, outdir: Path) -> None:
        self.stack = stack
        self.outdir = outdir
        self.template = Template.from_stack(stack)
        self.json: dict[str, Any] = self.template.to_json()

    def resources(self, kind: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.json["Resources"].items() if v["Type"] == kind}

    def one(self, kind: str) -> dict[str, Any]:
        found = list(self.resources(kind).values())
        assert len(found) == 1, f"{len(found)} {kind}"
        return found[0]["Properties"]


def _synth(outdir: Path, artifact: Path, **extra: Any) -> Synth:
    app, stack = build_app({**CONTEXT, **extra}, code_dir=artifact, outdir=str(outdir))
    app.synth()
    return Synth(stack, outdir)


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory, function_artifact: Path) -> Synth:
    return _synth(tmp_path_factory.mktemp("cdk.out"), function_artifact)


def test_function_runtime_architecture_timeout_and_logging(synth: Synth) -> None:
    function = synth.one("AWS::Lambda::Function")

    assert function["Runtime"] == "python3.13"
    assert function["Architectures"] == ["arm64"]
    assert function["Handler"] == "fulfillment.api.lambda_handler"
    assert function["Timeout"] < 29
    assert function["MemorySize"] == 1024
    assert function["LoggingConfig"]["LogFormat"] == "JSON"
    assert function["TracingConfig"] == {"Mode": "Active"}


def test_function_environment_is_exactly_the_settings_keys(synth: Synth) -> None:
    environment = synth.one("AWS::Lambda::Function")["Environment"]["Variables"]

    own = {key for key in environment if not key.startswith("POWERTOOLS_")} - {"AWS_DATA_PATH"}
    assert own == ENVIRONMENT_KEYS
    assert {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"} <= environment.keys()
    assert environment["PRODUCT_CODES"] == "prod-abc123,prod-def456"


def test_function_code_is_the_built_artifact_and_no_docker_asset(
    synth: Synth, function_artifact: Path
) -> None:
    manifest = json.loads(next(synth.outdir.glob("*.assets.json")).read_text())
    environment = synth.one("AWS::Lambda::Function")["Environment"]["Variables"]

    assert manifest.get("dockerImages", {}) == {}
    staged = [
        synth.outdir / f["source"]["path"]
        for f in manifest["files"].values()
        if f["source"].get("packaging") == "zip"
    ]
    assert len(staged) == 1
    assert (staged[0] / "fulfillment" / "api.py").read_bytes() == (
        function_artifact / "fulfillment" / "api.py"
    ).read_bytes()
    # (a) the current ResolveCustomer model travels with the code and botocore is told so
    data_path = environment["AWS_DATA_PATH"]
    assert data_path.startswith("/var/task/")
    model = staged[0] / data_path.removeprefix("/var/task/") / "meteringmarketplace"
    shape = json.loads(next(model.rglob("service-2.json")).read_text())["shapes"]
    assert {"LicenseArn", "Metadata"} <= shape["ResolveCustomerResult"]["members"].keys()
    # (b) what is on the cold path ships 3.13 bytecode
    assert (staged[0] / "fulfillment" / "__pycache__" / "api.cpython-313.pyc").is_file()


def _key_schema(properties: dict[str, Any]) -> list[dict[str, str]]:
    return properties["KeySchema"]


@pytest.mark.parametrize(
    ("schema", "name"), [(CUSTOMERS, "Customers"), (IDEMPOTENCY, "Idempotency")]
)
def test_tables_match_the_local_definition(synth: Synth, schema: Any, name: str) -> None:
    (table,) = [r for k, r in synth.resources("AWS::DynamoDB::Table").items() if name in k]
    properties = table["Properties"]
    local = create_table_request(schema, "t")

    assert properties["KeySchema"] == local["KeySchema"]
    assert sorted(properties["AttributeDefinitions"], key=str) == sorted(
        local["AttributeDefinitions"], key=str
    )
    indexes = {i["IndexName"]: i["KeySchema"] for i in properties.get("GlobalSecondaryIndexes", [])}
    assert indexes == {
        i["IndexName"]: i["KeySchema"] for i in local.get("GlobalSecondaryIndexes", [])
    }
    assert properties["TimeToLiveSpecification"] == {
        "AttributeName": schema.ttl_attribute,
        "Enabled": True,
    }
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert properties["DeletionProtectionEnabled"] is True
    assert properties["SSESpecification"]["SSEEnabled"] is True
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"


def _function_statements(synth: Synth) -> list[dict[str, Any]]:
    policies = synth.resources("AWS::IAM::Policy")
    (policy,) = [p for k, p in policies.items() if "FunctionRole" in k]
    return policy["Properties"]["PolicyDocument"]["Statement"]


def _actions_on(statements: list[dict[str, Any]], match: Any) -> set[str]:
    found: set[str] = set()
    for statement in statements:
        resources = statement["Resource"]
        resources = resources if isinstance(resources, list) else [resources]
        if any(match(r) for r in resources):
            actions = statement["Action"]
            found |= set(actions if isinstance(actions, list) else [actions])
    return found


def _ref_to(logical_prefix: str) -> Any:
    return lambda r: (
        isinstance(r, dict) and any(logical_prefix in str(v) for v in r.get("Fn::GetAtt", []))
    )


def test_iam_is_exactly_what_the_function_calls(synth: Synth) -> None:
    statements = _function_statements(synth)

    assert all(s["Effect"] == "Allow" for s in statements)
    assert _actions_on(statements, _ref_to("Customers")) == set(CUSTOMERS_TABLE_ACTIONS)
    assert _actions_on(statements, _ref_to("Idempotency")) == set(IDEMPOTENCY_TABLE_ACTIONS)
    assert _actions_on(statements, lambda r: r == "*") == {
        *MARKETPLACE_ACTIONS,
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }
    every_action = {
        a
        for s in statements
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert not any(a.endswith("*") for a in every_action)
    assert {a for a in every_action if a.startswith("logs:")} <= {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }


def test_stage_logs_access_without_bodies_and_is_throttled(synth: Synth) -> None:
    stage = synth.one("AWS::ApiGateway::Stage")

    assert "AccessLogSetting" in stage
    assert stage["TracingEnabled"] is True
    (settings,) = stage["MethodSettings"]
    assert settings["DataTraceEnabled"] is False
    assert (settings["ThrottlingRateLimit"], settings["ThrottlingBurstLimit"]) == (50, 100)
    assert "$context.path" not in json.dumps(stage["AccessLogSetting"])


def test_get_and_post_on_the_root_go_to_the_function(synth: Synth) -> None:
    methods = synth.resources("AWS::ApiGateway::Method").values()

    assert sorted(m["Properties"]["HttpMethod"] for m in methods) == ["GET", "POST"]
    for method in methods:
        assert method["Properties"]["Integration"]["Type"] == "AWS_PROXY"


def test_waf_guards_the_stage_with_a_rate_rule_and_common_rules(synth: Synth) -> None:
    acl = synth.one("AWS::WAFv2::WebACL")
    association = synth.one("AWS::WAFv2::WebACLAssociation")

    assert acl["Scope"] == "REGIONAL"
    rules = {r["Name"]: r for r in acl["Rules"]}
    assert rules["RateLimitPerIp"]["Statement"]["RateBasedStatement"] == {
        "Limit": 300,
        "AggregateKeyType": "IP",
    }
    assert rules["RateLimitPerIp"]["Action"] == {"Block": {}}
    assert (
        rules["AWSManagedRulesCommonRuleSet"]["Statement"]["ManagedRuleGroupStatement"]["Name"]
        == "AWSManagedRulesCommonRuleSet"
    )
    assert "Stage" in json.dumps(association["ResourceArn"])


def test_alarms_notify_the_topic_and_an_email_is_subscribed(synth: Synth) -> None:
    alarms = synth.resources("AWS::CloudWatch::Alarm")
    subscription = synth.one("AWS::SNS::Subscription")

    assert len(alarms) >= 7
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"]
        assert alarm["Properties"]["AlarmDescription"]
    assert subscription["Protocol"] == "email"
    assert subscription["Endpoint"] == "oncall@example.io"
    assert len(synth.resources("AWS::CloudWatch::Dashboard")) == 1


def test_outputs_give_the_fulfillment_and_dashboard_urls(synth: Synth) -> None:
    outputs = synth.json["Outputs"]

    assert "FulfillmentUrl" in outputs
    assert "DashboardUrl" in outputs
    assert "Marketplace Management Portal" in outputs["FulfillmentUrl"]["Description"]


def test_cfn_lint_passes(synth: Synth) -> None:
    template = next(synth.outdir.glob("*.template.json"))

    result = subprocess.run(  # noqa: S603 - our own linter on our own file
        [str(Path(sys.executable).with_name("cfn-lint")), "--", str(template)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_every_nag_acknowledgement_suppresses_a_real_finding(
    synth: Synth, tmp_path: Path, function_artifact: Path
) -> None:
    # Given the same app with every acknowledgement switched off
    outdir = tmp_path / "cdk.out"
    app, _ = build_app(
        {**CONTEXT, "nagSkipAcknowledgements": "true"},
        code_dir=function_artifact,
        outdir=str(outdir),
    )

    # When it is synthesized, cdk-nag fails it
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()

    # Then each acknowledgement matches a finding on its own construct in the report
    report = json.loads((outdir / "validation-report.json").read_text())
    findings = {
        (violation["ruleName"], construct["constructPath"])
        for plugin in report["pluginReports"]
        for violation in plugin["violations"]
        for construct in violation["violatingConstructs"]
    }
    assert synth.stack.acknowledgements
    for ack in synth.stack.acknowledgements:
        assert ack.reason.strip()
        assert any(
            rule == ack.rule_id and (path == ack.path or path.startswith(ack.path + "/"))
            for rule, path in findings
        ), ack
    # And nothing else was found: every finding is one we acknowledged
    for rule, path in findings:
        assert any(
            rule == a.rule_id and path.startswith(a.path) for a in synth.stack.acknowledgements
        )


def test_waf_off_by_context_removes_the_web_acl(tmp_path: Path, function_artifact: Path) -> None:
    synth = _synth(tmp_path / "cdk.out", function_artifact, wafEnabled="false")

    assert synth.resources("AWS::WAFv2::WebACL") == {}
    assert [a.rule_id for a in synth.stack.acknowledgements].count("AwsSolutions-APIG3") == 1
