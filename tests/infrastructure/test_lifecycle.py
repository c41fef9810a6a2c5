"""Subscription lifecycle intake: rules, queue, legacy SNS, the function's role and mapping, alarms.

Synthesizes the stack once for the module (plus one with the legacy SNS topics); the nag and
cfn-lint tests in test_stack.py cover this construct too, since it is part of the stack.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Environment

from fulfillment.contract import (
    AGREEMENT_DETAIL_TYPES,
    LICENSE_DETAIL_TYPES,
    LIFECYCLE_HANDLER,
    UNKNOWN_EVENT_TYPE,
    AgreementTermsUnknownReason,
    EntitlementDiscardReason,
    LifecycleOutcome,
    NotificationType,
)
from fulfillment.lifecycle.notifications import HANDLED_DETAIL_TYPES
from infra.app import build_app
from infra.config import ConfigError, FulfillmentConfig
from infra.lifecycle import (
    AGREEMENT_EVENTS,
    LICENSE_EVENTS,
    LIFECYCLE_INDEXES,
    MARKETPLACE_TOPIC_ACCOUNT,
    RegionError,
)
from infra.packaging import DATA_PATH_ENV
from infra.stack import FulfillmentStack

PRODUCTS = "prod-abc123,prod-def456"
CONTEXT = {"productCodes": PRODUCTS, "alarmEmail": "oncall@example.io"}
# Until fulfillment.settings registers the lifecycle handler (issue 5, written alongside).
SEND_ACTIONS = {"sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"}
LIFECYCLE_KEYS = frozenset({"CUSTOMERS_TABLE_NAME", "PRODUCT_CODES"})


class Synth:
    def __init__(self, stack: FulfillmentStack) -> None:
        app = stack.node.root
        assert isinstance(app, App)
        self.stack = stack
        self.json: dict[str, Any] = json.loads(
            (Path(app.outdir) / f"{stack.artifact_id}.template.json").read_text()
        )

    def resources(self, kind: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.json["Resources"].items() if v["Type"] == kind}

    def logical_id(self, construct: Any) -> str:
        return str(self.stack.resolve(construct.node.default_child.logical_id))


def _synth(outdir: Path, artifact: Path, **extra: Any) -> Synth:
    app, stack = build_app({**CONTEXT, **extra}, code_dir=artifact, outdir=str(outdir))
    app.synth()
    return Synth(stack)


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory, function_artifact: Path) -> Synth:
    return _synth(tmp_path_factory.mktemp("cdk.out"), function_artifact)


@pytest.fixture(scope="module")
def with_sns(tmp_path_factory: pytest.TempPathFactory, function_artifact: Path) -> Synth:
    return _synth(
        tmp_path_factory.mktemp("cdk.out"), function_artifact, legacySnsProductCodes="prod-abc123"
    )


def _lifecycle(synth: Synth) -> Any:
    assert synth.stack.lifecycle is not None
    return synth.stack.lifecycle


def _rules(synth: Synth) -> dict[str, dict[str, Any]]:
    return {
        k: v["Properties"]
        for k, v in synth.resources("AWS::Events::Rule").items()
        if "aws.agreement-marketplace" in json.dumps(v["Properties"].get("EventPattern"))
    }


def test_rules_on_the_default_bus_match_every_agreement_and_license_event(synth: Synth) -> None:
    rules = _rules(synth)

    assert len(rules) == 2
    detail_types = set()
    for rule in rules.values():
        assert "EventBusName" not in rule  # the default bus, where Marketplace sends them
        assert rule["EventPattern"]["source"] == ["aws.agreement-marketplace"]
        assert rule["State"] == "ENABLED"
        detail_types |= set(rule["EventPattern"]["detail-type"])
    assert detail_types == set(AGREEMENT_EVENTS) | set(LICENSE_EVENTS)
    assert len(detail_types) == 10
    for change in ("Created", "Amended", "Ended"):
        for role in ("Manufacturer", "Proposer"):
            assert f"Purchase Agreement {change} - {role}" in detail_types


def test_license_events_are_limited_to_the_configured_products(synth: Synth) -> None:
    patterns = {
        tuple(r["EventPattern"]["detail-type"]): r["EventPattern"] for r in _rules(synth).values()
    }

    license_pattern = patterns[LICENSE_EVENTS]
    agreement_pattern = patterns[AGREEMENT_EVENTS]

    assert license_pattern["detail"] == {"product": {"code": ["prod-abc123", "prod-def456"]}}
    # Agreement events carry no product code: the function filters them (PRODUCT_CODES)
    assert "detail" not in agreement_pattern


def test_both_rules_target_the_lifecycle_queue(synth: Synth) -> None:
    queue_id = synth.logical_id(_lifecycle(synth).queue)

    for rule in _rules(synth).values():
        (target,) = rule["Targets"]
        assert target["Arn"] == {"Fn::GetAtt": [queue_id, "Arn"]}


def test_queues_are_encrypted_ssl_only_with_a_dead_letter_queue_after_5_receives(
    synth: Synth,
) -> None:
    lifecycle = _lifecycle(synth)
    queues = synth.resources("AWS::SQS::Queue")
    queue = queues[synth.logical_id(lifecycle.queue)]["Properties"]
    dlq_id = synth.logical_id(lifecycle.dead_letter_queue)
    dlq = queues[dlq_id]["Properties"]

    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
        "maxReceiveCount": 5,
    }
    for properties in (queue, dlq):
        assert properties["SqsManagedSseEnabled"] is True
        assert properties["MessageRetentionPeriod"] == 14 * 24 * 3600
    # At least six times the function's timeout (AWS's guidance for SQS event sources)
    assert queue["VisibilityTimeout"] >= 6 * _function(synth)["Timeout"]


def _queue_policy(synth: Synth, queue: Any) -> list[dict[str, Any]]:
    queue_ref = {"Ref": synth.logical_id(queue)}
    (policy,) = [
        p["Properties"]
        for p in synth.resources("AWS::SQS::QueuePolicy").values()
        if p["Properties"]["Queues"] == [queue_ref]
    ]
    return policy["PolicyDocument"]["Statement"]


def test_queue_policy_admits_only_the_two_rules_over_tls(synth: Synth) -> None:
    lifecycle = _lifecycle(synth)
    statements = _queue_policy(synth, lifecycle.queue)
    rule_arns = [{"Fn::GetAtt": [synth.logical_id(rule), "Arn"]} for rule in lifecycle.rules]

    denies = [s for s in statements if s["Effect"] == "Deny"]
    allows = [s for s in statements if s["Effect"] == "Allow"]
    assert [d["Condition"] for d in denies] == [{"Bool": {"aws:SecureTransport": "false"}}]
    assert len(allows) == 2
    for allow in allows:
        assert allow["Principal"] == {"Service": "events.amazonaws.com"}
        # CDK's send grant: SendMessage plus the two read-only calls; never receive or delete
        assert set(_listed(allow["Action"])) <= SEND_ACTIONS
    sources = [a["Condition"]["ArnEquals"]["aws:SourceArn"] for a in allows]
    assert sorted(sources, key=str) == sorted(rule_arns, key=str)
    # No SNS topic may send without legacySnsProductCodes
    assert synth.resources("AWS::SNS::Subscription").keys() <= {
        k
        for k, v in synth.resources("AWS::SNS::Subscription").items()
        if v["Properties"]["Protocol"] == "email"
    }


def test_legacy_sns_topics_are_subscribed_with_the_envelope_when_configured(
    with_sns: Synth,
) -> None:
    lifecycle = _lifecycle(with_sns)
    queue_arn = {"Fn::GetAtt": [with_sns.logical_id(lifecycle.queue), "Arn"]}
    subscriptions = [
        s["Properties"]
        for s in with_sns.resources("AWS::SNS::Subscription").values()
        if s["Properties"]["Protocol"] == "sqs"
    ]
    topics = {
        f"arn:aws:sns:us-east-1:{MARKETPLACE_TOPIC_ACCOUNT}:aws-mp-subscription-notification-prod-abc123",
        f"arn:aws:sns:us-east-1:{MARKETPLACE_TOPIC_ACCOUNT}:aws-mp-entitlement-notification-prod-abc123",
    }

    assert {s["TopicArn"] for s in subscriptions} == topics
    for subscription in subscriptions:
        assert subscription["Endpoint"] == queue_arn
        # Raw delivery off: the function sees (and the DLQ keeps) the SNS envelope
        assert subscription.get("RawMessageDelivery") in (None, False)
    # The queue admits exactly those topics besides the two rules
    allows = [s for s in _queue_policy(with_sns, lifecycle.queue) if s["Effect"] == "Allow"]
    sns_allows = [a for a in allows if a["Principal"] == {"Service": "sns.amazonaws.com"}]
    assert {a["Condition"]["ArnEquals"]["aws:SourceArn"] for a in sns_allows} == topics
    assert len(allows) == 4


def _function(synth: Synth) -> dict[str, Any]:
    (function,) = [
        f["Properties"]
        for f in synth.resources("AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == LIFECYCLE_HANDLER
    ]
    return function


def test_function_runtime_logging_and_environment(synth: Synth) -> None:
    function = _function(synth)
    environment = function["Environment"]["Variables"]

    assert function["Runtime"] == "python3.13"
    assert function["Architectures"] == ["arm64"]
    assert function["LoggingConfig"]["LogFormat"] == "JSON"
    from tests.functions import ENVIRONMENT_KEYS as FUNCTION_ENVIRONMENT_KEYS

    expected = FUNCTION_ENVIRONMENT_KEYS[LIFECYCLE_HANDLER]
    # The shipped service models: GetEntitlements' LICENSE_ARN filter (infra/packaging.py).
    assert environment["AWS_DATA_PATH"] == DATA_PATH_ENV["AWS_DATA_PATH"]
    own = {k for k in environment if not k.startswith("POWERTOOLS_")} - {"AWS_DATA_PATH"}
    assert own == expected
    assert environment["PRODUCT_CODES"] == PRODUCTS
    assert {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"} <= environment.keys()


def _role_statements(synth: Synth) -> list[dict[str, Any]]:
    role_id = _function(synth)["Role"]["Fn::GetAtt"][0]
    (policy,) = [
        p["Properties"]
        for p in synth.resources("AWS::IAM::Policy").values()
        if p["Properties"]["Roles"] == [{"Ref": role_id}]
    ]
    return policy["PolicyDocument"]["Statement"]


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_role_can_do_exactly_what_the_function_calls(synth: Synth) -> None:
    lifecycle = _lifecycle(synth)
    table_id = synth.logical_id(synth.stack.node.find_child("Tables").node.find_child("Customers"))
    table_arn = {"Fn::GetAtt": [table_id, "Arn"]}
    queue_arn = {"Fn::GetAtt": [synth.logical_id(lifecycle.queue), "Arn"]}
    by_resource: dict[str, set[str]] = {}
    for statement in _role_statements(synth):
        assert statement["Effect"] == "Allow"
        for resource in _listed(statement["Resource"]):
            by_resource.setdefault(json.dumps(resource, sort_keys=True), set()).update(
                _listed(statement["Action"])
            )

    assert by_resource.pop(json.dumps(table_arn, sort_keys=True)) == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    }
    assert by_resource.pop('"*"') == {
        "aws-marketplace:GetEntitlements",
        "aws-marketplace:GetAgreementTerms",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }
    # GetAgreementTerms only for purchase agreements the seller proposed, alone in its statement
    (terms,) = [
        s
        for s in _role_statements(synth)
        if "aws-marketplace:GetAgreementTerms" in _listed(s["Action"])
    ]
    assert _listed(terms["Action"]) == ["aws-marketplace:GetAgreementTerms"]
    assert terms["Condition"] == {
        "StringEquals": {"aws-marketplace:PartyType": "Proposer"},
        "ForAllValues:StringEquals": {"aws-marketplace:AgreementType": ["PurchaseAgreement"]},
    }
    # The SQS event source's own grant, on this queue only
    assert by_resource.pop(json.dumps(queue_arn, sort_keys=True)) == {
        "sqs:ChangeMessageVisibility",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
        "sqs:ReceiveMessage",
    }
    indexes = {k: v for k, v in by_resource.items() if "/index/" in k}
    # Only the indexes its store queries (fulfillment/lifecycle/store.py)
    assert len(indexes) == len(LIFECYCLE_INDEXES) == 3
    for name in LIFECYCLE_INDEXES:
        (actions,) = [v for k, v in indexes.items() if f"/index/{name}" in k]
        assert actions == {"dynamodb:Query"}
    # What is left: its own log group
    for key in indexes:
        by_resource.pop(key)
    assert set().union(*by_resource.values()) == {"logs:CreateLogStream", "logs:PutLogEvents"}


def test_queue_feeds_the_function_with_partial_batch_responses(synth: Synth) -> None:
    lifecycle = _lifecycle(synth)
    (mapping,) = [
        m["Properties"]
        for m in synth.resources("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["EventSourceArn"]
        == {"Fn::GetAtt": [synth.logical_id(lifecycle.queue), "Arn"]}
    ]

    assert mapping["FunctionName"] == {"Ref": synth.logical_id(lifecycle.function)}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == 10
    assert 0 < mapping["MaximumBatchingWindowInSeconds"] <= 5


def _lifecycle_alarms(synth: Synth) -> dict[str, dict[str, Any]]:
    return {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in synth.resources("AWS::CloudWatch::Alarm").values()
        if "Lifecycle" in a["Properties"]["AlarmName"]
    }


def test_alarms_watch_errors_dead_letters_and_the_oldest_message(synth: Synth) -> None:
    alarms = _lifecycle_alarms(synth)
    topic_id = synth.logical_id(synth.stack.node.find_child("Monitoring").topic)
    lifecycle = _lifecycle(synth)
    dlq_name = {"Fn::GetAtt": [synth.logical_id(lifecycle.dead_letter_queue), "QueueName"]}
    queue_name = {"Fn::GetAtt": [synth.logical_id(lifecycle.queue), "QueueName"]}

    def watching(metric: str, dimension: Any) -> dict[str, Any]:
        (alarm,) = [
            a
            for a in alarms.values()
            if (stat := a["Metrics"][0]["MetricStat"]["Metric"])["MetricName"] == metric
            and stat["Dimensions"] == [{"Name": "QueueName", "Value": dimension}]
        ]
        return alarm

    depth = watching("ApproximateNumberOfMessagesVisible", dlq_name)
    assert (depth["Threshold"], depth["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    age = watching("ApproximateAgeOfOldestMessage", queue_name)
    assert (age["Threshold"], age["ComparisonOperator"]) == (900, "GreaterThanThreshold")
    function_ref = {"Ref": synth.logical_id(lifecycle.function)}
    (errors,) = [a for a in alarms.values() if "FunctionName" in json.dumps(a["Metrics"])]
    assert errors["Metrics"][0]["MetricStat"]["Metric"]["MetricName"] == "Errors"
    assert errors["Metrics"][0]["MetricStat"]["Metric"]["Dimensions"] == [
        {"Name": "FunctionName", "Value": function_ref}
    ]
    assert (errors["Threshold"], errors["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    (discarded,) = [
        a
        for a in alarms.values()
        if a["Metrics"][0]["MetricStat"]["Metric"]["MetricName"] == "EntitlementsDiscarded"
    ]
    assert {"Name": "Reason", "Value": "OtherCustomer"} in discarded["Metrics"][0]["MetricStat"][
        "Metric"
    ]["Dimensions"]
    assert (discarded["Threshold"], discarded["ComparisonOperator"]) == (
        1,
        "GreaterThanOrEqualToThreshold",
    )
    assert discarded["TreatMissingData"] == "notBreaching"
    # Any AccessDenied from GetAgreementTerms: no free trial is known until the role is fixed
    (denied,) = [
        a
        for a in alarms.values()
        if a["Metrics"][0]["MetricStat"]["Metric"]["MetricName"] == "AgreementTermsUnknown"
    ]
    assert {"Name": "Reason", "Value": "AccessDenied"} in denied["Metrics"][0]["MetricStat"][
        "Metric"
    ]["Dimensions"]
    assert (denied["Threshold"], denied["TreatMissingData"]) == (1, "notBreaching")
    assert len(alarms) == 5
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == [{"Ref": topic_id}]
        assert alarm["OKActions"] == [{"Ref": topic_id}]
        assert (
            "docs/runbook.md" in alarm["AlarmDescription"]
            or "log group" in (alarm["AlarmDescription"])
        )


def test_dashboard_draws_notifications_by_event_type_and_outcome(synth: Synth) -> None:
    (dashboard,) = synth.resources("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])

    assert "Subscription lifecycle" in body
    # Every pair that occurs (a SEARCH), and the failures per event type by exact dimensions
    assert "SEARCH('{Fulfillment,EventType,Outcome,service} MetricName=" in body
    assert "LifecycleNotification" in body
    # and GetEntitlements answers that were not (wholly) stored, by reason
    assert "Entitlements discarded by reason" in body
    assert "EntitlementsDiscarded" in body
    assert all(reason in body for reason in EntitlementDiscardReason)
    # and agreements whose terms (free trial) could not be read, by reason
    assert "Agreement terms unknown by reason" in body and "AgreementTermsUnknown" in body
    assert all(reason in body for reason in AgreementTermsUnknownReason)
    for event_type in (*NotificationType, UNKNOWN_EVENT_TYPE):
        assert event_type in body
    assert f'\\"{LifecycleOutcome.FAILED}\\"' in body


def test_ignored_notifications_are_neither_alarmed_nor_drawn_as_failures(synth: Synth) -> None:
    (dashboard,) = synth.resources("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    alarms = json.dumps(synth.resources("AWS::CloudWatch::Alarm"))

    # The failures graph names its outcome exactly (failed); the SEARCH draws ignored as its
    # own line. No alarm watches the lifecycle metric's outcomes at all.
    assert f'\\"{LifecycleOutcome.IGNORED}\\"' not in body
    assert "LifecycleNotification" not in alarms


def test_the_rules_subscribe_to_exactly_the_detail_types_the_function_handles(
    synth: Synth,
) -> None:
    subscribed = {t for rule in _rules(synth).values() for t in rule["EventPattern"]["detail-type"]}

    assert subscribed == set(AGREEMENT_DETAIL_TYPES) | set(LICENSE_DETAIL_TYPES)
    assert subscribed == HANDLED_DETAIL_TYPES


def test_outputs_name_the_dead_letter_queue(synth: Synth) -> None:
    assert "LifecycleDeadLetterQueueArn" in synth.json["Outputs"]


def test_lifecycle_off_leaves_no_rule_and_no_function(
    tmp_path: Path, function_artifact: Path
) -> None:
    synth = _synth(tmp_path / "cdk.out", function_artifact, lifecycleEnabled="false")

    assert synth.stack.lifecycle is None
    assert _rules(synth) == {}
    assert not any(
        f["Properties"].get("Handler") == LIFECYCLE_HANDLER
        for f in synth.resources("AWS::Lambda::Function").values()
    )


@pytest.mark.parametrize(("region", "refused"), [("eu-west-1", True), ("us-east-1", False)])
def test_a_concrete_region_other_than_us_east_1_is_refused(
    function_artifact: Path, region: str, refused: bool
) -> None:
    app = App(context=CONTEXT)
    config = FulfillmentConfig.from_context(app.node)

    def build() -> FulfillmentStack:
        return FulfillmentStack(
            app,
            "Fulfillment",
            config=config,
            code_dir=function_artifact,
            env=Environment(account="123456789012", region=region),
        )

    if refused:
        with pytest.raises(RegionError, match="us-east-1"):
            build()
    else:
        assert build().lifecycle is not None


def test_legacy_codes_must_be_configured_products() -> None:
    app = App(context={**CONTEXT, "legacySnsProductCodes": "prod-zzz999"})

    with pytest.raises(ConfigError, match="legacySnsProductCodes"):
        FulfillmentConfig.from_context(app.node)


def test_subscription_only_codes_reach_the_function_and_must_be_configured_products() -> None:
    chosen = FulfillmentConfig.from_context(
        App(context={**CONTEXT, "subscriptionProductCodes": "prod-def456"}).node
    )
    assert chosen.subscription_product_codes == ("prod-def456",)
    assert (
        FulfillmentConfig.from_context(App(context=CONTEXT).node).subscription_product_codes == ()
    )

    app = App(context={**CONTEXT, "subscriptionProductCodes": "prod-zzz999"})
    with pytest.raises(ConfigError, match="subscriptionProductCodes"):
        FulfillmentConfig.from_context(app.node)
