"""The metering resources: off by default, and with meteringDimensions exactly what the
functions need (docs/metering.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fulfillment.contract import BY_STATUS, METERING_HANDLER, USAGE_HANDLER
from infra.config import ConfigError
from tests.infrastructure.test_lifecycle import Synth, _listed, _synth

DIMENSIONS = ["requests", "storage_gb"]


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory, function_artifact: Path) -> Synth:
    return _synth(
        tmp_path_factory.mktemp("cdk.out"), function_artifact, meteringDimensions=DIMENSIONS
    )


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory, function_artifact: Path) -> Synth:
    return _synth(tmp_path_factory.mktemp("cdk.out"), function_artifact)


def _function(synth: Synth, handler: str) -> dict[str, Any]:
    (function,) = [
        f["Properties"]
        for f in synth.resources("AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == handler
    ]
    return function


def _statements(synth: Synth, function: dict[str, Any]) -> list[dict[str, Any]]:
    role = function["Role"]["Fn::GetAtt"][0]
    (policy,) = [
        p["Properties"]
        for p in synth.resources("AWS::IAM::Policy").values()
        if p["Properties"]["Roles"] == [{"Ref": role}]
    ]
    return [s for s in policy["PolicyDocument"]["Statement"] if "logs:" not in json.dumps(s)]


def _actions(statements: list[dict[str, Any]]) -> set[str]:
    return {a for s in statements for a in _listed(s["Action"])}


def test_without_dimensions_there_is_no_metering_resource(plain: Synth) -> None:
    handlers = {
        f["Properties"].get("Handler") for f in plain.resources("AWS::Lambda::Function").values()
    }

    assert plain.stack.metering is None
    assert not {USAGE_HANDLER, METERING_HANDLER} & handlers
    assert "UsageEndpoint" not in plain.json["Outputs"]


def test_the_usage_table_keeps_billing_evidence(metered: Synth) -> None:
    assert metered.stack.metering is not None
    table_id = metered.logical_id(metered.stack.metering.table)
    table = metered.json["Resources"][table_id]

    assert table["DeletionPolicy"] == "Retain"
    properties = table["Properties"]
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


def test_the_functions_get_their_settings_and_exactly_their_permissions(metered: Synth) -> None:
    intake, run = _function(metered, USAGE_HANDLER), _function(metered, METERING_HANDLER)

    for function in (intake, run):
        environment = function["Environment"]["Variables"]
        assert environment["METERING_DIMENSIONS"] == "requests,storage_gb"
        assert environment["METERING_DRY_RUN"] == "false"
        assert {"USAGE_TABLE_NAME", "CUSTOMERS_TABLE_NAME", "PRODUCT_CODES"} <= environment.keys()
    assert _actions(_statements(metered, intake)) - {
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    } == {
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:ConditionCheckItem",
        "dynamodb:BatchGetItem",
    }
    run_statements = _statements(metered, run)
    (marketplace,) = [
        s for s in run_statements if "aws-marketplace:BatchMeterUsage" in _listed(s["Action"])
    ]
    assert _listed(marketplace["Action"]) == ["aws-marketplace:BatchMeterUsage"]
    index_queries = [
        s for s in run_statements if f"/index/{BY_STATUS}" in json.dumps(s["Resource"])
    ]
    assert [_listed(s["Action"]) for s in index_queries] == [["dynamodb:Query"]]
    assert "aws-marketplace:MeterUsage" not in _actions(run_statements)
    assert run["Timeout"] == 300
    assert run["ReservedConcurrentExecutions"] == 1


def test_an_hourly_schedule_invokes_the_run_with_retries_and_a_dead_letter_queue(
    metered: Synth,
) -> None:
    (rule,) = [
        r["Properties"]
        for r in metered.resources("AWS::Events::Rule").values()
        if "ScheduleExpression" in r["Properties"]
    ]

    assert rule["ScheduleExpression"] == "cron(5 * * * ? *)"
    (target,) = rule["Targets"]
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 2
    assert "DeadLetterConfig" in target


def test_post_usage_is_on_the_hand_off_api_and_signed(metered: Synth) -> None:
    (method,) = [
        m["Properties"]
        for m in metered.resources("AWS::ApiGateway::Method").values()
        if m["Properties"]["HttpMethod"] == "POST"
        and "usage" in json.dumps(m["Properties"]["ResourceId"]).lower()
    ]

    assert method["AuthorizationType"] == "AWS_IAM"
    assert {"UsageEndpoint", "UsageInvokeArn"} <= metered.json["Outputs"].keys()


def test_alarms_page_on_lost_or_refused_usage(metered: Synth) -> None:
    alarms = {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in metered.resources("AWS::CloudWatch::Alarm").values()
        if "Metering" in json.dumps(a["Properties"].get("AlarmName"))
        or "UsageIntake" in json.dumps(a["Properties"].get("AlarmName"))
    }
    names = " ".join(alarms)

    for stem in (
        "Metering-DuplicateRecord",
        "Metering-CustomerNotSubscribed",
        "Metering-Quarantined",
        "Metering-Expired",
        "Metering-OldestUnmeteredHour",
        "MeteringRun-Function",
        "UsageIntake-Function",
        "Metering-ScheduleDLQ",
    ):
        assert stem in names, stem
    (oldest,) = [a for n, a in alarms.items() if "OldestUnmeteredHour" in n]
    assert oldest["Threshold"] == 6 * 3600
    assert oldest["TreatMissingData"] == "breaching"
    assert all(
        "docs/runbook.md" in a["AlarmDescription"] or "log group" in a["AlarmDescription"]
        for a in alarms.values()
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [(["requests", "requests"], "twice"), (["a,b"], "no comma"), ([""], "1 to 255")],
)
def test_bad_dimensions_fail_the_synth_with_the_key_named(
    tmp_path: Path, function_artifact: Path, value: Any, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _synth(tmp_path, function_artifact, meteringDimensions=value)

    assert "meteringDimensions" in str(caught.value) and message in str(caught.value)
