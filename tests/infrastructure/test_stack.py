"""The synthesized stack: resources, key properties, IAM, WAF, packaging hook-up, nag, lint.

Synthesizing takes seconds, so the module synthesizes once and every test reads the result.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

from fulfillment.contract import (
    CONTACTS,
    CUSTOMERS,
    FULFILLMENT_HANDLER,
    HANDOFF_HANDLER,
    IDEMPOTENCY,
    LIFECYCLE_HANDLER,
    RECOVERY_HANDLER,
    SECURITY_HEADERS,
    SIGNUP_HANDLER,
)
from fulfillment.registration.settings import load_settings
from fulfillment.signup.settings import load_signup_settings
from infra.api import (
    CUSTOMERS_TABLE_ACTIONS,
    HANDOFF_CUSTOMERS_TABLE_ACTIONS,
    IDEMPOTENCY_TABLE_ACTIONS,
    MARKETPLACE_ACTIONS,
    SIGNUP_CONTACTS_KEY_ACTIONS,
    SIGNUP_CONTACTS_TABLE_ACTIONS,
    SIGNUP_CUSTOMERS_TABLE_ACTIONS,
)
from infra.app import build_app
from infra.schema import create_table_request
from infra.stack import FulfillmentStack
from local.recovery import BATCH_SIZE as LOCAL_RECOVERY_BATCH_SIZE
from tests.functions import ENVIRONMENT_KEYS as FUNCTION_ENVIRONMENT_KEYS

# The built-in sign-up page (no registrationUrl): every function and route is deployed.
CONTEXT = {
    "productCodes": "prod-abc123,prod-def456",
    "trialRegistrationUrl": "https://app.example.io/trial",
    "alarmEmail": "oncall@example.io",
    "signupCompleteUrl": "https://app.example.io/welcome",
    # As cdk.json holds it: a JSON list, not a string.
    "signupExtraFields": [
        {"name": "vat_id", "label": "VAT ID", "max_length": 20},
        {"name": "team_size", "label": "Team size", "required": True},
    ],
}
# The seller's own sign-up site instead.
OWN_SITE = {"registrationUrl": "https://app.example.io/aws"}
HANDLERS = (FULFILLMENT_HANDLER, SIGNUP_HANDLER, HANDOFF_HANDLER)
XRAY_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


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

    def functions(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """handler -> (logical id, properties) of every function of the shared artifact."""
        found: dict[str, tuple[str, dict[str, Any]]] = {}
        for logical_id, resource in self.resources("AWS::Lambda::Function").items():
            handler = resource["Properties"].get("Handler", "")
            if handler.startswith("fulfillment."):
                assert handler not in found, f"two functions run {handler}"
                found[handler] = (logical_id, resource["Properties"])
        return found

    def function(self, handler: str) -> dict[str, Any]:
        return self.functions()[handler][1]


def _synth(outdir: Path, artifact: Path, **extra: Any) -> Synth:
    app, stack = build_app({**CONTEXT, **extra}, code_dir=artifact, outdir=str(outdir))
    app.synth()
    return Synth(stack, outdir)


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory, function_artifact: Path) -> Synth:
    return _synth(tmp_path_factory.mktemp("cdk.out"), function_artifact)


@pytest.fixture(scope="module")
def own_site(tmp_path_factory: pytest.TempPathFactory, function_artifact: Path) -> Synth:
    return _synth(tmp_path_factory.mktemp("cdk.out"), function_artifact, **OWN_SITE)


def test_the_api_has_its_three_functions(synth: Synth) -> None:
    assert set(HANDLERS) <= synth.functions().keys()


@pytest.mark.parametrize("handler", HANDLERS)
def test_function_runtime_architecture_timeout_and_logging(synth: Synth, handler: str) -> None:
    function = synth.function(handler)

    assert function["Runtime"] == "python3.13"
    assert function["Architectures"] == ["arm64"]
    assert function["Timeout"] < 29
    assert function["MemorySize"] == 1024
    assert function["LoggingConfig"]["LogFormat"] == "JSON"
    assert function["TracingConfig"] == {"Mode": "Active"}


def test_every_function_environment_is_exactly_its_settings_keys(synth: Synth) -> None:
    functions = synth.functions()

    # Every function of the package in the template, the API's three and any other
    for handler, (_, function) in functions.items():
        environment = function["Environment"]["Variables"]
        own = {key for key in environment if not key.startswith("POWERTOOLS_")}
        # Only the functions that call Marketplace get the newer service models' path.
        calls_marketplace = handler in (FULFILLMENT_HANDLER, LIFECYCLE_HANDLER)
        assert ("AWS_DATA_PATH" in own) == calls_marketplace, handler
        own.discard("AWS_DATA_PATH")
        assert own == FUNCTION_ENVIRONMENT_KEYS[handler], handler
        assert {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"} <= environment.keys()


def _resolved(environment: dict[str, Any]) -> dict[str, str]:
    """The environment as the function sees it, with CloudFormation references filled in."""
    references = {"RECOVERY_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/recovery"}
    return {
        k: v if isinstance(v, str) else references.get(k, "customers-table")
        for k, v in environment.items()
    }


@pytest.mark.parametrize("site", ["built-in", "own"])
def test_fulfillment_environment_is_accepted_by_its_settings(
    synth: Synth, own_site: Synth, site: str
) -> None:
    deployed = own_site if site == "own" else synth
    environment = deployed.function(FULFILLMENT_HANDLER)["Environment"]["Variables"]

    settings = load_settings(_resolved(environment))

    assert settings.product_codes == {"prod-abc123", "prod-def456"}
    assert settings.registration_url == (OWN_SITE["registrationUrl"] if site == "own" else None)
    assert settings.trial_registration_url == CONTEXT["trialRegistrationUrl"]


def test_with_the_sellers_own_site_the_built_in_sign_up_is_not_deployed(own_site: Synth) -> None:
    # Given registrationUrl (the seller's own sign-up site)
    # Then no function runs the sign-up page and the API has no /signup route
    assert SIGNUP_HANDLER not in own_site.functions()
    assert set(own_site.functions()) >= {FULFILLMENT_HANDLER, HANDOFF_HANDLER}
    assert _routes(own_site).keys() == {
        ("/", "GET"),
        ("/", "POST"),
        ("/registrations/{id}", "GET"),
    }
    # And nothing that only the sign-up function needed: its role, logs, alarms, grants
    assert [k for k in own_site.json["Resources"] if "Signup" in k] == []
    alarms = [
        a["Properties"]["AlarmName"] for a in own_site.resources("AWS::CloudWatch::Alarm").values()
    ]
    assert [name for name in alarms if "Signup" in json.dumps(name)] == []
    contacts = own_site.stack.node.find_child("Tables").node.find_child("Contacts")
    contacts_key = own_site.stack.node.find_child("Tables").node.find_child("ContactsKey")
    for arn in (contacts.table_arn, contacts_key.key_arn):
        reference = json.dumps(own_site.stack.resolve(arn))
        for policy in own_site.resources("AWS::IAM::Policy").values():
            assert reference not in json.dumps(policy), "a role may still reach the contacts"
    # And the buyer data already stored stays: the contacts table is kept (retained)
    assert any("Contacts" in k for k in own_site.resources("AWS::DynamoDB::Table"))


def test_signup_extra_fields_reach_the_sign_up_function_as_json(synth: Synth) -> None:
    environment = synth.function(SIGNUP_HANDLER)["Environment"]["Variables"]

    settings = load_signup_settings(_resolved(environment))

    assert settings.signup_complete_url == "https://app.example.io/welcome"
    assert [(f.name, f.label, f.required, f.max_length) for f in settings.signup_extra_fields] == [
        ("vat_id", "VAT ID", False, 20),
        ("team_size", "Team size", True, 200),
    ]


def test_function_code_is_the_built_artifact_and_no_docker_asset(
    synth: Synth, function_artifact: Path
) -> None:
    manifest = json.loads(next(synth.outdir.glob("*.assets.json")).read_text())
    environment = synth.function(FULFILLMENT_HANDLER)["Environment"]["Variables"]

    assert manifest.get("dockerImages", {}) == {}
    staged = [
        synth.outdir / f["source"]["path"]
        for f in manifest["files"].values()
        if f["source"].get("packaging") == "zip"
    ]
    # One artifact, uploaded once, shared by the API's functions
    assert len(staged) == 1
    assert len({json.dumps(synth.function(h)["Code"], sort_keys=True) for h in HANDLERS}) == 1
    assert (staged[0] / "fulfillment" / "api.py").read_bytes() == (
        function_artifact / "fulfillment" / "api.py"
    ).read_bytes()
    # Each handler's module is in it
    for handler in HANDLERS:
        module = handler.rsplit(".", 1)[0].replace(".", "/")
        assert (staged[0] / f"{module}.py").is_file(), handler
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
    ("schema", "name"),
    [(CUSTOMERS, "Customers"), (IDEMPOTENCY, "Idempotency"), (CONTACTS, "Contacts")],
)
def test_tables_match_the_local_definition(synth: Synth, schema: Any, name: str) -> None:
    (table,) = [
        r
        for k, r in synth.resources("AWS::DynamoDB::Table").items()
        if k.startswith(f"Tables{name}")
    ]
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
    if schema.ttl_attribute:
        assert properties["TimeToLiveSpecification"] == {
            "AttributeName": schema.ttl_attribute,
            "Enabled": True,
        }
    else:
        assert "TimeToLiveSpecification" not in properties
    stream = local.get("StreamSpecification", {}).get("StreamViewType")
    assert properties.get("StreamSpecification", {}).get("StreamViewType") == stream
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert properties["DeletionProtectionEnabled"] is True
    assert properties["SSESpecification"]["SSEEnabled"] is True
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"


def _function_statements(synth: Synth, handler: str) -> list[dict[str, Any]]:
    """The statements of the one inline policy on ``handler``'s own role."""
    role_id = synth.function(handler)["Role"]["Fn::GetAtt"][0]
    (policy,) = [
        p
        for p in synth.resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
    ]
    assert policy["Properties"]["Roles"] == [{"Ref": role_id}]
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


def _all_actions(statements: list[dict[str, Any]]) -> set[str]:
    return {
        a
        for s in statements
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }


CONTACTS_KEY_ACTIONS = {"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"}


def _logical_id(synth: Synth, kind: str, construct: str) -> str:
    """The logical id of the one ``kind`` resource of the Tables construct named ``construct``."""
    # CDK's logical ids: the construct path without separators, then an 8-digit hash.
    (found,) = [
        k for k in synth.resources(kind) if re.fullmatch(f"Tables{construct}[0-9A-F]{{8}}", k)
    ]
    return found


def _contacts_ids(synth: Synth) -> tuple[str, str]:
    """(contacts table, contacts key) logical ids."""
    return (
        _logical_id(synth, "AWS::DynamoDB::Table", "Contacts"),
        _logical_id(synth, "AWS::KMS::Key", "ContactsKey"),
    )


RECOVERY_CONSUMER_ACTIONS = {
    "sqs:ReceiveMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueUrl",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
}


@pytest.mark.parametrize(
    ("handler", "customers", "idempotency", "contacts", "recovery_queue", "unscoped"),
    [
        (
            FULFILLMENT_HANDLER,
            # GetItem, DeleteItem: the fold of an early item; ConditionCheckItem: the session's
            # check of the key before license ids
            {
                "dynamodb:ConditionCheckItem",
                "dynamodb:DeleteItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
            },
            {"dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"},
            set(),
            {"sqs:SendMessage"},
            {"aws-marketplace:ResolveCustomer", *XRAY_ACTIONS},
        ),
        (
            SIGNUP_HANDLER,
            {"dynamodb:GetItem", "dynamodb:UpdateItem"},
            set(),
            {"dynamodb:PutItem"},
            set(),
            XRAY_ACTIONS,
        ),
        (HANDOFF_HANDLER, {"dynamodb:GetItem"}, set(), set(), set(), XRAY_ACTIONS),
        (
            RECOVERY_HANDLER,
            {"dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"},
            {"dynamodb:UpdateItem"},
            set(),
            # Added by the SQS event source: what Lambda's poller does on the function's behalf.
            RECOVERY_CONSUMER_ACTIONS,
            XRAY_ACTIONS,
        ),
    ],
)
def test_iam_is_exactly_what_each_function_calls(
    synth: Synth,
    handler: str,
    customers: set[str],
    idempotency: set[str],
    contacts: set[str],
    recovery_queue: set[str],
    unscoped: set[str],
) -> None:
    statements = _function_statements(synth, handler)
    log_group_id = synth.function(handler)["LoggingConfig"]["LogGroup"]["Ref"]
    contacts_table, contacts_key = _contacts_ids(synth)

    assert all(s["Effect"] == "Allow" for s in statements)
    assert _actions_on(statements, _ref_to("TablesCustomers")) == customers
    assert _actions_on(statements, _ref_to("TablesIdempotency")) == idempotency
    assert _actions_on(statements, _ref_to(contacts_table)) == contacts
    # The contacts table's key: only with the table, and only through DynamoDB
    key_actions = CONTACTS_KEY_ACTIONS if contacts else set()
    assert _actions_on(statements, _ref_to(contacts_key)) == key_actions
    for statement in statements:
        if _actions_on([statement], _ref_to(contacts_key)):
            via = statement["Condition"]["StringEquals"]["kms:ViaService"]
            assert _joined(via) == "dynamodb.<AWS::Region>.<AWS::URLSuffix>"
    assert _actions_on(statements, _ref_to("RecoveryQueue")) == recovery_queue
    assert _actions_on(statements, lambda r: r == "*") == unscoped
    # Logs: write to its own log group, nothing else
    assert _actions_on(statements, _ref_to(log_group_id)) == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }
    every_action = _all_actions(statements)
    assert every_action == customers | idempotency | contacts | key_actions | unscoped | (
        recovery_queue
    ) | {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }
    assert not any(a.endswith("*") for a in every_action)


def test_the_recovery_processor_takes_one_parked_registration_per_invocation(
    synth: Synth,
) -> None:
    recovery_function, _ = synth.functions()[RECOVERY_HANDLER]
    (mapping,) = [
        resource["Properties"]
        for resource in synth.resources("AWS::Lambda::EventSourceMapping").values()
        if resource["Properties"]["FunctionName"] == {"Ref": recovery_function}
    ]

    # One message per invocation: a failed replay fails only its own message, which SQS
    # delivers again, so no partial batch response is declared (fulfillment.recovery)
    assert _ref_to("RecoveryQueue")(mapping["EventSourceArn"])
    assert mapping["BatchSize"] == LOCAL_RECOVERY_BATCH_SIZE == 1  # and so does make run
    assert "FunctionResponseTypes" not in mapping
    assert "MaximumBatchingWindowInSeconds" not in mapping


def test_no_other_role_can_reach_the_contacts_table_or_its_key(synth: Synth) -> None:
    # Given every IAM policy in the stack (all functions' roles, stream pollers, API Gateway)
    signup_role = synth.function(SIGNUP_HANDLER)["Role"]["Fn::GetAtt"][0]
    contacts_id, key_id = _contacts_ids(synth)

    # Then only the sign-up function's role mentions the contacts table or its key
    mentioning = {
        json.dumps(policy["Properties"]["Roles"])
        for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
        for policy in synth.resources(kind).values()
        if contacts_id in json.dumps(policy) or key_id in json.dumps(policy)
    }
    assert mentioning == {json.dumps([{"Ref": signup_role}])}
    # And no other role or function mentions them at all (inline policies, environment)
    for logical_id, resource in synth.json["Resources"].items():
        if resource["Type"] in ("AWS::IAM::Role", "AWS::Lambda::Function"):
            text = json.dumps(resource)
            mine = logical_id == synth.functions()[SIGNUP_HANDLER][0]
            assert mine or (contacts_id not in text and key_id not in text), logical_id
    # And the table streams nowhere: no event source mapping reads it
    for mapping in synth.resources("AWS::Lambda::EventSourceMapping").values():
        assert contacts_id not in json.dumps(mapping)


def test_contacts_table_is_encrypted_with_its_own_rotating_key(synth: Synth) -> None:
    table_id, key_id = _contacts_ids(synth)
    table, key = synth.json["Resources"][table_id], synth.json["Resources"][key_id]

    sse = table["Properties"]["SSESpecification"]
    assert (sse["SSEEnabled"], sse["SSEType"]) == (True, "KMS")
    assert sse["KMSMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert "StreamSpecification" not in table["Properties"]
    assert key["Properties"]["EnableKeyRotation"] is True
    # Deleting the key would make the retained table unreadable: both outlive the stack
    assert key["DeletionPolicy"] == key["UpdateReplacePolicy"] == "Retain"
    # No other table uses it
    others = [r for k, r in synth.resources("AWS::DynamoDB::Table").items() if k != table_id]
    assert key_id not in json.dumps(others)


def test_action_constants_are_what_the_template_grants(synth: Synth) -> None:
    # The constants infra/api.py builds the policies from, as named in the decision log
    assert set(CUSTOMERS_TABLE_ACTIONS) == {
        "dynamodb:ConditionCheckItem",
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    }
    assert set(IDEMPOTENCY_TABLE_ACTIONS) == _actions_on(
        _function_statements(synth, FULFILLMENT_HANDLER), _ref_to("Idempotency")
    )
    assert set(MARKETPLACE_ACTIONS) == {"aws-marketplace:ResolveCustomer"}
    signup = _function_statements(synth, SIGNUP_HANDLER)
    assert set(SIGNUP_CUSTOMERS_TABLE_ACTIONS) == _actions_on(signup, _ref_to("TablesCustomers"))
    assert set(SIGNUP_CONTACTS_TABLE_ACTIONS) == {"dynamodb:PutItem"}
    contacts_table, contacts_key = _contacts_ids(synth)
    assert set(SIGNUP_CONTACTS_TABLE_ACTIONS) == _actions_on(signup, _ref_to(contacts_table))
    assert set(SIGNUP_CONTACTS_KEY_ACTIONS) == _actions_on(signup, _ref_to(contacts_key))
    assert set(HANDOFF_CUSTOMERS_TABLE_ACTIONS) == {"dynamodb:GetItem"}


def test_stages_log_access_without_bodies_and_are_throttled(synth: Synth) -> None:
    # The buyers' API and the hand-off's alike
    stages = [s["Properties"] for s in synth.resources("AWS::ApiGateway::Stage").values()]
    assert len(stages) == 2

    for stage in stages:
        assert "AccessLogSetting" in stage
        assert stage["TracingEnabled"] is True
        (settings,) = stage["MethodSettings"]
        assert settings["DataTraceEnabled"] is False
        assert (settings["ThrottlingRateLimit"], settings["ThrottlingBurstLimit"]) == (50, 100)
        assert "$context.path" not in json.dumps(stage["AccessLogSetting"])


def _routes(synth: Synth) -> dict[tuple[str, str], dict[str, Any]]:
    """(path, HTTP method) -> method properties, with the path rebuilt from the resources."""
    resources = synth.resources("AWS::ApiGateway::Resource")

    def path_of(reference: Any) -> str:
        if isinstance(reference, dict) and "Ref" in reference:
            resource = resources[reference["Ref"]]["Properties"]
            return path_of(resource["ParentId"]) + "/" + resource["PathPart"]
        return ""  # the API's root resource

    return {
        (path_of(m["Properties"]["ResourceId"]) or "/", m["Properties"]["HttpMethod"]): m[
            "Properties"
        ]
        for m in synth.resources("AWS::ApiGateway::Method").values()
    }


def test_each_route_goes_to_its_function_with_its_authorization(synth: Synth) -> None:
    routes = _routes(synth)
    functions = {h: logical_id for h, (logical_id, _) in synth.functions().items()}

    expected = {
        ("/", "GET"): (FULFILLMENT_HANDLER, "NONE"),
        ("/", "POST"): (FULFILLMENT_HANDLER, "NONE"),
        ("/signup", "GET"): (SIGNUP_HANDLER, "NONE"),
        ("/signup", "POST"): (SIGNUP_HANDLER, "NONE"),
        ("/registrations/{id}", "GET"): (HANDOFF_HANDLER, "AWS_IAM"),
    }
    assert routes.keys() == expected.keys()
    validators = set()
    for route, (handler, authorization) in expected.items():
        method = routes[route]
        assert method["Integration"]["Type"] == "AWS_PROXY"
        assert functions[handler] in json.dumps(method["Integration"]["Uri"]), route
        assert method["AuthorizationType"] == authorization, route
        validators.add(json.dumps(method["RequestValidatorId"]))
    # One request validator per API (buyers', hand-off's), on every method
    assert len(validators) == 2
    apis = {route: json.dumps(method["RestApiId"]) for route, method in routes.items()}
    handoff_api = apis.pop(("/registrations/{id}", "GET"))
    assert handoff_api not in apis.values()
    assert len(set(apis.values())) == 1
    assert routes[("/registrations/{id}", "GET")]["RequestParameters"] == {
        "method.request.path.id": True
    }


def test_only_api_gateway_may_invoke_each_function_on_its_own_route(synth: Synth) -> None:
    permissions = synth.resources("AWS::Lambda::Permission").values()
    functions = synth.functions()

    for handler, route in (
        (SIGNUP_HANDLER, "/signup"),
        (HANDOFF_HANDLER, "/GET/registrations/*"),
    ):
        logical_id = functions[handler][0]
        mine = [p["Properties"] for p in permissions if logical_id in json.dumps(p)]
        assert mine
        for permission in mine:
            assert permission["Principal"] == "apigateway.amazonaws.com"
            assert route in json.dumps(permission["SourceArn"])


BUYER_GATEWAY_RESPONSES = {
    "DEFAULT_4XX",
    "DEFAULT_5XX",
    "THROTTLED",
    "WAF_FILTERED",
    "INTEGRATION_TIMEOUT",
}


def test_api_gateways_own_errors_give_buyers_a_page_with_the_security_headers(
    synth: Synth,
) -> None:
    # Given the buyers' API and the hand-off's
    routes = _routes(synth)
    buyers_api = routes[("/", "POST")]["RestApiId"]
    handoff_api = routes[("/registrations/{id}", "GET")]["RestApiId"]
    responses = [
        r["Properties"] for r in synth.resources("AWS::ApiGateway::GatewayResponse").values()
    ]

    # Then API Gateway's throttling, WAF, timeout, 4xx and 5xx answers on the buyers' API are
    # a small HTML page with the functions' security headers, whatever the Accept header
    buyers = {r["ResponseType"]: r for r in responses if r["RestApiId"] == buyers_api}
    assert buyers.keys() == BUYER_GATEWAY_RESPONSES
    for response_type, response in buyers.items():
        headers = {
            name.removeprefix("gatewayresponse.header."): value
            for name, value in response["ResponseParameters"].items()
        }
        assert {k: v for k, v in headers.items() if k in SECURITY_HEADERS} == {
            k: f"'{v}'" for k, v in SECURITY_HEADERS.items()
        }, response_type
        assert headers["Content-Type"] == "'text/html; charset=utf-8'"
        assert headers["Content-Security-Policy"].startswith("'default-src 'none';")
        assert "StatusCode" not in response  # API Gateway's own status stays
        pages = set(response["ResponseTemplates"].values())
        assert response["ResponseTemplates"].keys() == {"application/json", "text/html"}
        (page,) = pages
        assert page.startswith("<!doctype html>")
        assert "$context.requestId" in page
        assert "<script" not in page and "http://" not in page
    # And the hand-off API keeps API Gateway's JSON for its machine caller
    assert [r for r in responses if r["RestApiId"] == handoff_api] == []


def test_waf_guards_the_stage_with_a_rate_rule_and_common_rules(synth: Synth) -> None:
    acl = synth.one("AWS::WAFv2::WebACL")
    associations = [
        a["Properties"] for a in synth.resources("AWS::WAFv2::WebACLAssociation").values()
    ]
    stages = synth.resources("AWS::ApiGateway::Stage")

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
    # Both stages (buyers' API and hand-off API) are behind it
    assert len(associations) == len(stages) == 2
    for stage_id, stage in stages.items():
        api_id = json.dumps(stage["Properties"]["RestApiId"])
        assert [a for a in associations if api_id in json.dumps(a["ResourceArn"])], stage_id
    overrides = rules["AWSManagedRulesCommonRuleSet"]["Statement"]["ManagedRuleGroupStatement"][
        "RuleActionOverrides"
    ]
    assert {o["Name"]: o["ActionToUse"] for o in overrides} == {
        "SizeRestrictions_BODY": {"Count": {}},
        "CrossSiteScripting_BODY": {"Count": {}},
    }


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


def _joined(value: Any) -> str:
    """An Fn::Join output as text, references shown as <Name>."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(_joined(p) for p in parts)
    if "Ref" in value:
        return f"<{value['Ref']}>"
    return "<" + json.dumps(value) + ">"


def test_outputs_give_the_urls_and_the_hand_off_endpoint_and_arn(synth: Synth) -> None:
    outputs = synth.json["Outputs"]

    assert "FulfillmentUrl" in outputs
    assert "DashboardUrl" in outputs
    assert "Marketplace Management Portal" in outputs["FulfillmentUrl"]["Description"]
    endpoint = _joined(outputs["RegistrationsEndpoint"]["Value"])
    # The hand-off has its own API (JSON gateway responses), always on its execute-api host
    assert endpoint.startswith("https://<FulfillmentHandoffApi")
    assert (
        ".execute-api.<AWS::Region>.<AWS::URLSuffix>/<FulfillmentHandoffApiDeploymentStageprod"
        in endpoint
    )
    assert endpoint.endswith("/registrations/{id}")
    arn = _joined(outputs["RegistrationsInvokeArn"]["Value"])
    assert arn.startswith("arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:")
    assert arn.endswith("/prod/GET/registrations/*")
    assert "execute-api:Invoke" in outputs["RegistrationsInvokeArn"]["Description"]


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


def test_waf_off_and_no_registration_url(tmp_path: Path, function_artifact: Path) -> None:
    # Given the optional features off: no WAF, no seller sign-up site
    synth = _synth(
        tmp_path / "cdk.out",
        function_artifact,
        wafEnabled="false",
        registrationUrl="",
        signupCompleteUrl="",
        signupExtraFields="",
    )

    # Then there is no web ACL, and its absence is acknowledged once
    assert synth.resources("AWS::WAFv2::WebACL") == {}
    # once per stage (buyers' API, hand-off API)
    assert [a.rule_id for a in synth.stack.acknowledgements].count("AwsSolutions-APIG3") == 2
    # And buyers go to the built-in sign-up page, which has no extra fields
    fulfillment = load_settings(
        _resolved(synth.function(FULFILLMENT_HANDLER)["Environment"]["Variables"])
    )
    assert fulfillment.registration_url is None
    signup = load_signup_settings(
        _resolved(synth.function(SIGNUP_HANDLER)["Environment"]["Variables"])
    )
    assert (signup.signup_complete_url, signup.signup_extra_fields) == (None, ())
