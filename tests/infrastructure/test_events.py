"""The registration events construct, synthesized once in a minimal stack with cdk-nag on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack, Validations
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Template
from cdk_nag import AwsSolutionsChecks

from fulfillment.contract import CUSTOMERS, PUBLISHER_HANDLER
from fulfillment.events.settings import ENVIRONMENT_KEYS as PUBLISHER_ENVIRONMENT_KEYS
from infra.events import (
    MAX_RECEIVE_COUNT,
    NOTIFICATION_FIELDS,
    PUT_EVENTS_ACTIONS,
    RETRY_QUEUE_SEND_ACTIONS,
    RegistrationEvents,
)
from infra.nag import SKIP_CONTEXT_KEY
from infra.schema import create_table_request
from infra.tables import Tables

STACK_NAME = "EventsTest"
EMAIL = "sales-team@example.io"
CONTACT_FIELDS = ("email", "company", "contact_name", "phone", "contactName")


class Synth:
    def __init__(self, stack: Stack, construct: RegistrationEvents) -> None:
        self.stack = stack
        self.construct = construct
        self.json: dict[str, Any] = Template.from_stack(stack).to_json()

    def resources(self, kind: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.json["Resources"].items() if v["Type"] == kind}

    def one(self, kind: str) -> dict[str, Any]:
        found = list(self.resources(kind).values())
        assert len(found) == 1, f"{len(found)} {kind}"
        return found[0]["Properties"]

    def logical_id(self, construct: Any) -> str:
        return str(self.stack.resolve(construct.node.default_child.logical_id))


def _build(outdir: Path, artifact: Path, **context: Any) -> tuple[App, Stack, RegistrationEvents]:
    app = App(outdir=str(outdir), context=context)
    stack = Stack(app, STACK_NAME)
    tables = Tables(stack, "Tables")
    # The alarm topic stands in for Monitoring's: encrypted and SSL-only, so nag is quiet.
    alarm_topic = sns.Topic(
        stack,
        "AlarmTopic",
        master_key=kms.Key(stack, "AlarmKey", enable_key_rotation=True),
        enforce_ssl=True,
    )
    construct = RegistrationEvents(
        stack,
        "Events",
        table=tables.customers,
        code_dir=artifact,
        environment_extra={
            "POWERTOOLS_SERVICE_NAME": "fulfillment",
            "AWS_DATA_PATH": "/var/task/x",
        },
        log_retention=logs.RetentionDays.THREE_MONTHS,
        notification_email=EMAIL,
        stack_name=STACK_NAME,
        alarm_topic=alarm_topic,
    )
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, stack, construct


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory, function_artifact: Path) -> Synth:
    app, stack, construct = _build(tmp_path_factory.mktemp("cdk.out"), function_artifact)
    app.synth()  # raises ValidationFailed on any unacknowledged cdk-nag finding
    return Synth(stack, construct)


def _mappings(synth: Synth) -> dict[str, dict[str, Any]]:
    by_source: dict[str, dict[str, Any]] = {}
    for resource in synth.resources("AWS::Lambda::EventSourceMapping").values():
        properties = resource["Properties"]
        source = json.dumps(properties["EventSourceArn"])
        by_source["stream" if "StreamArn" in source else "queue"] = properties
    return by_source


def test_the_customers_table_streams_both_images_like_the_local_table(synth: Synth) -> None:
    (table,) = [r for k, r in synth.resources("AWS::DynamoDB::Table").items() if "Customers" in k]

    local = create_table_request(CUSTOMERS, "t")["StreamSpecification"]
    assert table["Properties"]["StreamSpecification"] == {"StreamViewType": local["StreamViewType"]}
    assert local["StreamEnabled"] is True


def test_the_publisher_function(synth: Synth) -> None:
    function = synth.one("AWS::Lambda::Function")
    environment = function["Environment"]["Variables"]

    assert function["Handler"] == PUBLISHER_HANDLER
    assert function["Runtime"] == "python3.13"
    assert function["Architectures"] == ["arm64"]
    assert function["LoggingConfig"]["LogFormat"] == "JSON"
    own = {k for k in environment if not k.startswith("POWERTOOLS_")} - {"AWS_DATA_PATH"}
    assert own == PUBLISHER_ENVIRONMENT_KEYS
    bus = synth.one("AWS::Events::EventBus")
    assert bus["Name"] == f"{STACK_NAME}-registrations"
    assert environment["EVENT_BUS_NAME"] == {"Ref": synth.logical_id(synth.construct.bus)}


def test_the_stream_mapping_filters_customers_retries_and_keeps_a_last_resort(synth: Synth) -> None:
    stream = _mappings(synth)["stream"]

    assert stream["StartingPosition"] == "TRIM_HORIZON"
    assert stream["BisectBatchOnFunctionError"] is True
    assert stream["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 0 < stream["MaximumRetryAttempts"] <= 10000
    assert stream["MaximumRecordAgeInSeconds"] < 24 * 3600  # inside the stream's retention
    (pattern,) = [json.loads(f["Pattern"]) for f in stream["FilterCriteria"]["Filters"]]
    assert pattern == {"dynamodb": {"Keys": {"sk": {"S": ["CUSTOMER"]}}}}
    destination = stream["DestinationConfig"]["OnFailure"]["Destination"]
    failure_queue = synth.logical_id(synth.construct.stream_failure_queue)
    assert destination == {"Fn::GetAtt": [failure_queue, "Arn"]}


def test_the_retry_queue_mapping_reports_partial_failures(synth: Synth) -> None:
    queue = _mappings(synth)["queue"]

    assert queue["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    retry_queue = synth.logical_id(synth.construct.retry_queue)
    assert queue["EventSourceArn"] == {"Fn::GetAtt": [retry_queue, "Arn"]}


def test_queues_are_encrypted_ssl_only_and_the_retry_queue_redrives_after_five(
    synth: Synth,
) -> None:
    queues = synth.resources("AWS::SQS::Queue")
    retry = queues[synth.logical_id(synth.construct.retry_queue)]["Properties"]
    dlq_id = synth.logical_id(synth.construct.dead_letter_queue)

    assert len(queues) == 3
    for queue in queues.values():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True
        assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert MAX_RECEIVE_COUNT == 5
    assert retry["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
        "maxReceiveCount": 5,
    }
    # At least six times the function timeout (AWS's guidance for SQS event sources).
    function = synth.one("AWS::Lambda::Function")
    assert retry["VisibilityTimeout"] >= 6 * function["Timeout"]
    policies = synth.resources("AWS::SQS::QueuePolicy").values()
    denied = [
        s
        for p in policies
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert len(denied) == 3


def _role_actions(synth: Synth) -> dict[str, list[Any]]:
    """Each action of the publisher role's policies -> the resources it is granted on."""
    granted: dict[str, list[Any]] = {}
    for policy in synth.resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow"
            actions = statement["Action"]
            resources = statement["Resource"]
            for action in [actions] if isinstance(actions, str) else actions:
                granted.setdefault(action, []).extend(
                    resources if isinstance(resources, list) else [resources]
                )
    return granted


def test_the_publisher_role_holds_exactly_the_actions_it_needs(synth: Synth) -> None:
    granted = _role_actions(synth)
    construct = synth.construct
    bus, retry = synth.logical_id(construct.bus), synth.logical_id(construct.retry_queue)
    failures = synth.logical_id(construct.stream_failure_queue)

    assert set(granted) == {
        *PUT_EVENTS_ACTIONS,
        *RETRY_QUEUE_SEND_ACTIONS,
        # the stream event source
        "dynamodb:ListStreams",
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        # the retry queue event source
        "sqs:ReceiveMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueUrl",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        # its log group
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }
    assert granted["events:PutEvents"] == [{"Fn::GetAtt": [bus, "Arn"]}]
    send_targets = {json.dumps(r) for r in granted["sqs:SendMessage"]}
    assert send_targets == {
        json.dumps({"Fn::GetAtt": [retry, "Arn"]}),
        json.dumps({"Fn::GetAtt": [failures, "Arn"]}),  # the on-failure destination
    }
    assert granted["dynamodb:ListStreams"] == ["*"]  # no resource ARN exists for it
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage"):
        assert granted[action] == [{"Fn::GetAtt": [retry, "Arn"]}]
    assert all("StreamArn" in json.dumps(r) for r in granted["dynamodb:GetRecords"])


def test_the_seller_notification_carries_no_contact_details(synth: Synth) -> None:
    rule = synth.one("AWS::Events::Rule")
    (target,) = rule["Targets"]
    transformer = target["InputTransformer"]

    assert rule["EventPattern"] == {"source": ["fulfillment.registration"]}
    assert rule["EventBusName"] == {"Ref": synth.logical_id(synth.construct.bus)}
    assert sorted(transformer["InputPathsMap"].values()) == sorted(NOTIFICATION_FIELDS.values())
    text = json.dumps(transformer)
    # Nor the registration id: while its session is open it opens the buyer's sign-up page.
    for field in (
        *CONTACT_FIELDS,
        "licenseArn",
        "customerIdentifier",
        "agreementId",
        "registrationId",
    ):
        assert field not in text
    assert target["Arn"] == {"Ref": synth.logical_id(synth.construct.topic)}


def test_the_topic_is_encrypted_with_a_key_eventbridge_may_use(synth: Synth) -> None:
    topics = synth.resources("AWS::SNS::Topic")
    topic = topics[synth.logical_id(synth.construct.topic)]["Properties"]
    key_id = topic["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key = synth.json["Resources"][key_id]["Properties"]

    assert key["EnableKeyRotation"] is True
    (allowed,) = _eventbridge_statements(key["KeyPolicy"])
    assert set(allowed["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    subscription = synth.one("AWS::SNS::Subscription")
    assert subscription["Protocol"] == "email"
    assert subscription["Endpoint"] == EMAIL


def _eventbridge_statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        s for s in policy["Statement"] if s.get("Principal") == {"Service": "events.amazonaws.com"}
    ]


def test_eventbridge_may_publish_to_the_topic_and_use_its_key_for_the_notify_rule_only(
    synth: Synth,
) -> None:
    # Given the seller-notification rule, as deployed on the stack's bus
    (rule,) = [
        r["Properties"]
        for r in synth.resources("AWS::Events::Rule").values()
        if r["Properties"].get("EventBusName") == {"Ref": synth.logical_id(synth.construct.bus)}
    ]
    topic_id = synth.logical_id(synth.construct.topic)
    key_id = synth.json["Resources"][topic_id]["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    (topic_policy,) = [
        p["Properties"]["PolicyDocument"]
        for p in synth.resources("AWS::SNS::TopicPolicy").values()
        if p["Properties"]["Topics"] == [{"Ref": topic_id}]
    ]
    key_policy = synth.json["Resources"][key_id]["Properties"]["KeyPolicy"]

    # Then both grants to EventBridge hold only for this account and that rule's ARN
    for policy in (topic_policy, key_policy):
        (allowed,) = _eventbridge_statements(policy)
        condition = allowed["Condition"]
        assert set(condition) == {"StringEquals", "ArnEquals"}
        assert condition["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
        (source,) = condition["ArnEquals"].values()
        assert list(condition["ArnEquals"]) == ["aws:SourceArn"]
        parts = source["Fn::Join"][1]
        assert ":events:" in parts
        assert parts[-3:] == [":rule/", rule["EventBusName"], "/" + rule["Name"]]


def test_alarms_on_dead_letters_stream_failures_retry_age_errors_and_lag(synth: Synth) -> None:
    alarms = {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in synth.resources("AWS::CloudWatch::Alarm").values()
    }
    prefix = f"{STACK_NAME}-Events-"

    assert set(alarms) == {
        prefix + name
        for name in (
            "DeadLetterDepth",
            "StreamFailureDepth",
            "RetryOldestMessageAge",
            "PublisherErrors",
            "StreamIteratorAge",
        )
    }
    dead_letters = alarms[prefix + "DeadLetterDepth"]
    assert dead_letters["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert dead_letters["Threshold"] == 1
    assert dead_letters["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarms[prefix + "RetryOldestMessageAge"]["MetricName"] == "ApproximateAgeOfOldestMessage"
    assert alarms[prefix + "PublisherErrors"]["MetricName"] == "Errors"
    alarm_topic = {"Ref": synth.logical_id(synth.stack.node.find_child("AlarmTopic"))}
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == alarm["OKActions"] == [alarm_topic]
        assert alarm["AlarmDescription"]


def test_every_acknowledgement_suppresses_a_real_finding(
    synth: Synth, tmp_path: Path, function_artifact: Path
) -> None:
    # Given the same stack with acknowledgements switched off
    app, _, construct = _build(
        tmp_path / "cdk.out", function_artifact, **{SKIP_CONTEXT_KEY: "true"}
    )

    # When it is synthesized, cdk-nag fails it
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()

    # Then each acknowledgement matches a finding on its own construct, and nothing else was found
    report = json.loads((tmp_path / "cdk.out" / "validation-report.json").read_text())
    findings = {
        (violation["ruleName"], construct_["constructPath"])
        for plugin in report["pluginReports"]
        for violation in plugin["violations"]
        for construct_ in violation["violatingConstructs"]
    }
    assert construct.acknowledgements
    for ack in construct.acknowledgements:
        assert ack.reason.strip()
        assert any(
            rule == ack.rule_id and (path == ack.path or path.startswith(ack.path + "/"))
            for rule, path in findings
        ), ack
    for rule, path in findings:
        assert any(
            rule == a.rule_id and path.startswith(a.path) for a in construct.acknowledgements
        ), (rule, path)
