"""The real handler, real-shaped events, moto's DynamoDB server and the Marketplace stand-in."""

from __future__ import annotations

import dataclasses
import io
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from fulfillment.core.pages import MARKETPLACE_SUBSCRIPTIONS_URL
from fulfillment.registration.handler import lambda_handler
from local.gateway import LambdaContext
from tests.events import TOKEN_FIELD, form_post, rest_event
from tests.integration.conftest import (
    PRODUCT,
    REGISTRATION_URL,
    TRIAL_URL,
    FunctionClients,
    Handler,
    Stack,
    all_logs,
    registrar,
)
from tests.secrets_registry import TOKEN

NEW_STYLE_PK = "LICENSE#l-0123456789abcdef0123456789abcdef"


def _session_id(response: dict[str, Any]) -> str:
    assert response["statusCode"] == 303, response.get("body")
    return parse_qs(urlsplit(response["headers"]["Location"]).query)["registration"][0]


def _emf(stdout: str) -> list[dict[str, Any]]:
    blobs = [json.loads(line) for line in stdout.splitlines() if line.startswith('{"_aws"')]
    return blobs


def _metric_names(stdout: str) -> list[str]:
    return [
        metric["Name"]
        for blob in _emf(stdout)
        for directive in blob["_aws"]["CloudWatchMetrics"]
        for metric in directive["Metrics"]
    ]


def test_first_registration_stores_the_customer_and_redirects_to_sign_up(
    stack: Stack,
    lambda_context: LambdaContext,
    capsys: pytest.CaptureFixture[str],
    function_logs: io.StringIO,
) -> None:
    # Given a buyer of a new-style product with a fresh token
    token = stack.marketplace.issue_token("new-style")

    # When their browser posts it
    response = lambda_handler(form_post(token), lambda_context)

    # Then they are sent to the configured registration URL with only a registration id
    location = response["headers"]["Location"]
    session_id = _session_id(response)
    assert location.startswith("https://app.example.com/signup?source=aws&registration=")
    assert len(session_id) >= 22
    assert token not in location and "111122223333" not in location
    # And the customer is stored with what Marketplace said, and nothing the browser sent
    customer = stack.customer(NEW_STYLE_PK)
    assert customer is not None
    assert customer["product_code"] == {"S": PRODUCT}
    assert customer["customer_aws_account_id"] == {"S": "111122223333"}
    assert customer["agreement_id"]["S"].startswith("agmt-")
    assert customer["registration_count"] == {"N": "1"}
    assert customer["first_registered_at"] == customer["last_registered_at"]
    assert "customer_identifier" not in customer  # empty for new integrations: never stored
    # And a session refers to the customer and expires through the table's TTL
    session = stack.dynamodb.get_item(
        TableName=stack.customers_table,
        Key={"pk": {"S": f"SESSION#{session_id}"}, "sk": {"S": "SESSION"}},
    )["Item"]
    assert session["customer_pk"] == {"S": NEW_STYLE_PK}
    assert int(session["expires_at"]["N"]) > int(session["created_at"]["S"][:4])
    # And the function told operations about it
    names = _metric_names(capsys.readouterr().out)
    assert {"RegistrationSucceeded", "NewCustomer"} <= set(names)
    assert stack.marketplace.resolve_calls_for(token) == 1


def test_resubmission_replays_the_same_redirect_without_calling_marketplace_again(
    stack: Stack,
    lambda_context: LambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = stack.marketplace.issue_token("new-style")
    first = lambda_handler(form_post(token), lambda_context)
    capsys.readouterr()

    # When the buyer double-clicks, refreshes, or submits again later
    again = [lambda_handler(form_post(token), lambda_context) for _ in range(3)]

    assert {r["headers"]["Location"] for r in again} == {first["headers"]["Location"]}
    assert stack.marketplace.resolve_calls_for(token) == 1
    assert stack.customer(NEW_STYLE_PK)["registration_count"] == {"N": "1"}
    sessions = [i for i in stack.items() if i["sk"]["S"] == "SESSION"]
    assert len(sessions) == 1
    assert _metric_names(capsys.readouterr().out).count("DuplicateSubmission") == 3


def test_the_stored_outcome_keeps_its_json_shape_so_older_records_replay(
    stack: Stack, lambda_context: LambdaContext
) -> None:
    # Given a registration recorded by Powertools idempotency
    token = stack.marketplace.issue_token("new-style")
    first = lambda_handler(form_post(token), lambda_context)
    (record,) = stack.items(stack.idempotency_table)

    # Then the outcome is stored as a JSON object with the fields the earlier (dataclass)
    # serializer wrote, not as a JSON list of a tuple's values
    stored = json.loads(record["data"]["S"])
    assert sorted(stored) == [
        "customer_key",
        "customer_ref",
        "deferred",
        "free_trial",
        "new_customer",
        "product_code",
        "registered_by_request",
        "session_expires_at",
        "session_id",
    ]
    assert stored["session_id"] in first["headers"]["Location"]
    # And a resubmission replays from it
    again = lambda_handler(form_post(token), lambda_context)
    assert again["headers"]["Location"] == first["headers"]["Location"]
    # And so does a record written before the outcome kept the free-trial choice
    del stored["free_trial"]
    stack.dynamodb.update_item(
        TableName=stack.idempotency_table,
        Key={"id": record["id"]},
        UpdateExpression="SET #data = :data",
        ExpressionAttributeNames={"#data": "data"},
        ExpressionAttributeValues={":data": {"S": json.dumps(stored)}},
    )
    older = lambda_handler(form_post(token), lambda_context)
    assert older["headers"]["Location"] == first["headers"]["Location"]


def test_query_string_token_on_get_registers_too(
    stack: Stack, lambda_context: LambdaContext
) -> None:
    token = stack.marketplace.issue_token("new-style")
    event = rest_event(method="GET", body=None, content_type=None, query={TOKEN_FIELD: [token]})

    response = lambda_handler(event, lambda_context)

    assert response["statusCode"] == 303
    assert stack.customer(NEW_STYLE_PK) is not None


def test_base64_encoded_form_body_registers(stack: Stack, lambda_context: LambdaContext) -> None:
    token = stack.marketplace.issue_token("new-style")

    response = lambda_handler(form_post(token, base64_body=True), lambda_context)

    assert response["statusCode"] == 303


def test_legacy_customer_is_keyed_on_its_customer_identifier(
    stack: Stack, lambda_context: LambdaContext
) -> None:
    token = stack.marketplace.issue_token("legacy")

    lambda_handler(form_post(token), lambda_context)

    customer = stack.customer(f"LEGACY#{PRODUCT}#Ab1Cd2Ef3Gh")
    assert customer is not None
    assert customer["customer_identifier"] == {"S": "Ab1Cd2Ef3Gh"}
    assert customer["customer_aws_account_id"] == {"S": "444455556666"}
    assert "license_arn" not in customer


def test_two_licenses_of_one_account_are_two_customers(
    stack: Stack, lambda_context: LambdaContext
) -> None:
    for name in ("new-style", "second-license"):
        response = lambda_handler(form_post(stack.marketplace.issue_token(name)), lambda_context)
        assert response["statusCode"] == 303

    customers = [i for i in stack.items() if i["sk"]["S"] == "CUSTOMER"]
    assert len(customers) == 2
    assert {c["customer_aws_account_id"]["S"] for c in customers} == {"111122223333"}
    assert len({c["license_arn"]["S"] for c in customers}) == 2


def test_re_registration_keeps_other_writers_attributes(
    stack: Stack,
    lambda_context: LambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given the lifecycle processor recorded the subscription before the buyer arrived
    stack.dynamodb.put_item(
        TableName=stack.customers_table,
        Item={
            "pk": {"S": NEW_STYLE_PK},
            "sk": {"S": "CUSTOMER"},
            "status": {"S": "subscribed"},
            "status_changed_at": {"S": "2026-11-26T10:00:00.000+00:00"},
            "entitlements": {"L": [{"S": "seats=10"}]},
        },
    )

    # When the buyer registers twice, with two tokens
    lambda_handler(form_post(stack.marketplace.issue_token("new-style")), lambda_context)
    first = stack.customer(NEW_STYLE_PK)
    lambda_handler(form_post(stack.marketplace.issue_token("new-style")), lambda_context)

    # Then the lifecycle attributes are untouched and the registration is counted
    customer = stack.customer(NEW_STYLE_PK)
    assert customer["status"] == {"S": "subscribed"}
    assert customer["entitlements"] == {"L": [{"S": "seats=10"}]}
    assert customer["registration_count"] == {"N": "2"}
    assert customer["first_registered_at"] == first["first_registered_at"]
    assert customer["last_registered_at"]["S"] >= first["last_registered_at"]["S"]
    names = _metric_names(capsys.readouterr().out)
    assert names.count("NewCustomer") == 1
    assert names.count("ReturningCustomer") == 1


def test_free_trial_goes_to_the_trial_url(stack: Stack, lambda_context: LambdaContext) -> None:
    token = stack.marketplace.issue_token("free-trial")

    response = lambda_handler(form_post(token, free_trial=True), lambda_context)

    assert response["headers"]["Location"].startswith(TRIAL_URL + "?registration=")


@pytest.mark.parametrize("first_free_trial", [True, False], ids=["trial-first", "plain-first"])
def test_a_resubmission_keeps_the_first_submissions_free_trial_choice(
    stack: Stack, lambda_context: LambdaContext, first_free_trial: bool
) -> None:
    # Given a token first posted with (or without) the free-trial offer type
    token = stack.marketplace.issue_token("free-trial")
    first = lambda_handler(form_post(token, free_trial=first_free_trial), lambda_context)

    # When the same token comes again with the other choice
    again = lambda_handler(form_post(token, free_trial=not first_free_trial), lambda_context)

    # Then the resubmission gets the first answer's Location, and Marketplace was asked once
    assert first["statusCode"] == again["statusCode"] == 303
    expected = TRIAL_URL + "?registration=" if first_free_trial else REGISTRATION_URL + "&"
    assert first["headers"]["Location"].startswith(expected)
    assert again["headers"]["Location"] == first["headers"]["Location"]
    assert stack.marketplace.resolve_calls_for(token) == 1


def test_free_trial_without_a_trial_url_uses_the_registration_url(
    stack: Stack, lambda_context: LambdaContext, clients: FunctionClients
) -> None:
    without_trial_url = registrar(clients, trial_registration_url=None)
    token = stack.marketplace.issue_token("free-trial")

    response = lambda_handler(
        form_post(token, free_trial=True), lambda_context, registrar=without_trial_url
    )

    assert response["headers"]["Location"].startswith(REGISTRATION_URL + "&registration=")


def test_landing_page_answers_a_plain_get(stack: Stack, lambda_context: LambdaContext) -> None:
    response = lambda_handler(
        rest_event(method="GET", body=None, content_type=None), lambda_context
    )

    assert response["statusCode"] == 200
    assert "AWS Marketplace" in response["body"]
    assert stack.marketplace.resolve_calls == 0


@pytest.mark.parametrize(
    ("event_kwargs", "status"),
    [
        ({"body": None, "content_type": None}, 400),
        ({"body": f"{TOKEN_FIELD}=bad%20token"}, 400),
        ({"body": f"{TOKEN_FIELD}=%3Cscript%3E%0A"}, 400),
        # An invalid percent-escape: parse_qs would keep "%zz" in the token.
        ({"body": f"{TOKEN_FIELD}=AbC%zzdEf%2BGhI%3D%3D"}, 400),
        ({"body": "a=" + "b" * 200_000}, 413),
    ],
)
def test_bad_submissions_are_answered_without_any_aws_call(
    stack: Stack,
    lambda_context: LambdaContext,
    event_kwargs: dict[str, Any],
    status: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    response = lambda_handler(rest_event(**event_kwargs), lambda_context)

    assert response["statusCode"] == status
    assert "start again from AWS Marketplace" in response["body"].replace("Start", "start")
    assert stack.marketplace.resolve_calls == 0
    assert stack.items() == [] and stack.items(stack.idempotency_table) == []
    assert "RegistrationRejected" in _metric_names(capsys.readouterr().out)


def test_expired_token_page(stack: Stack, lambda_context: LambdaContext) -> None:
    stack.marketplace.set_expire_after(0)
    token = stack.marketplace.issue_token("new-style")

    response = lambda_handler(form_post(token), lambda_context)

    assert response["statusCode"] == 400
    assert "return to AWS Marketplace and choose" in response["body"]
    assert "Set up your account" in response["body"]
    assert MARKETPLACE_SUBSCRIPTIONS_URL in response["body"]
    assert stack.customer(NEW_STYLE_PK) is None


def test_invalid_token_is_400_and_nothing_is_stored(
    stack: Stack, lambda_context: LambdaContext
) -> None:
    response = lambda_handler(form_post("Unknown+Token/Value=="), lambda_context)

    assert response["statusCode"] == 400
    assert "not valid" in response["body"]
    assert stack.marketplace.resolve_calls == 1
    assert stack.items() == []


@pytest.mark.handles_secrets(TOKEN)
def test_logging_the_event_cannot_be_switched_on_by_environment(
    stack: Stack,
    lambda_context: LambdaContext,
    monkeypatch: pytest.MonkeyPatch,
    function_logs: io.StringIO,
) -> None:
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")
    token = stack.marketplace.issue_token("new-style")

    response = lambda_handler(form_post(token), lambda_context)

    assert response["statusCode"] == 303
    assert token not in function_logs.getvalue()
    assert "x-amzn-marketplace-token" not in function_logs.getvalue()


def test_unknown_product_is_403_and_nothing_is_stored(
    stack: Stack,
    lambda_context: LambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    response = lambda_handler(
        form_post(stack.marketplace.issue_token("other-product")), lambda_context
    )

    assert response["statusCode"] == 403
    assert stack.items() == []
    blobs = _emf(capsys.readouterr().out)
    assert any(b.get("Reason") == "UnknownProduct" for b in blobs)


# ResolveCustomer answers that no customer key can be made of: no account id (an empty
# string cannot go into an indexed attribute), or a LicenseArn that is not a license's.
UNKEYABLE_ANSWERS = pytest.mark.parametrize(
    ("field", "value", "error_code"),
    [
        ("customer_aws_account_id", "", "MissingAccountId"),
        ("license_arn", "arn:aws:iam::111122223333:role/not-a-license", "InvalidLicenseArn"),
        ("license_arn", "arn:aws:license-manager::111122223333:grant:g-1", "InvalidLicenseArn"),
    ],
)


@UNKEYABLE_ANSWERS
def test_an_answer_that_cannot_key_a_customer_is_refused_and_nothing_is_stored_or_parked(
    stack: Stack,
    lambda_context: LambdaContext,
    capsys: pytest.CaptureFixture[str],
    field: str,
    value: str,
    error_code: str,
) -> None:
    # Given a buyer for whom ResolveCustomer answers such an identity
    original = next(c for c in stack.marketplace.customers if c.name == "new-style")
    name = f"unkeyable-{len(stack.marketplace.customers)}"  # the stand-in outlives a test
    stack.marketplace.add_customer(dataclasses.replace(original, name=name, **{field: value}))

    # When their browser posts the token
    response = lambda_handler(form_post(stack.marketplace.issue_token(name)), lambda_context)

    # Then they see a page saying so, with a reference and no Try again button (the same
    # answer would come back), and the seller's Marketplace failure metric counts it
    assert response["statusCode"] == 500
    assert "We could not confirm your subscription" in response["body"]
    assert "Try again" not in response["body"]
    # And nothing was stored, nor parked for a replay that could never store it
    assert stack.items() == []
    assert stack.recovery_messages() == []
    blobs = _emf(capsys.readouterr().out)
    assert any(b.get("ErrorCode") == error_code for b in blobs)


def test_throttling_within_retries_is_invisible_to_the_buyer(
    stack: Stack, lambda_context: LambdaContext, fulfillment_url: Handler
) -> None:
    stack.marketplace.throttle_next(2)
    token = stack.marketplace.issue_token("new-style")

    response = fulfillment_url(form_post(token), lambda_context)

    assert response["statusCode"] == 303
    assert stack.marketplace.resolve_calls_for(token) == 3  # the third attempt got through


def test_disabled_api_is_503_and_logged_as_a_configuration_fault(
    stack: Stack,
    lambda_context: LambdaContext,
    function_logs: io.StringIO,
) -> None:
    stack.marketplace.set_disabled(True)

    response = lambda_handler(form_post(stack.marketplace.issue_token("new-style")), lambda_context)

    assert response["statusCode"] == 503
    errors = [
        json.loads(line)
        for line in function_logs.getvalue().splitlines()
        if '"level":"ERROR"' in line
    ]
    assert errors and "configuration fault" in errors[0]["message"]
    assert errors[0]["variable"] == "MARKETPLACE_REGION"


def test_missing_configuration_is_500_with_an_error_log_naming_the_variable(
    stack: Stack,
    lambda_context: LambdaContext,
    monkeypatch: pytest.MonkeyPatch,
    function_logs: io.StringIO,
) -> None:
    monkeypatch.delenv("PRODUCT_CODES")

    event = form_post(stack.marketplace.issue_token("new-style"), request_id="req-config-1")
    response = lambda_handler(event, lambda_context)

    assert response["statusCode"] == 500
    assert "req-config-1" in response["body"]
    errors = [
        json.loads(line)
        for line in function_logs.getvalue().splitlines()
        if '"level":"ERROR"' in line
    ]
    assert errors[0]["variable"] == "PRODUCT_CODES"
    assert "PRODUCT_CODES" in errors[0]["message"]


def test_resubmission_after_the_session_expired_opens_a_new_session(
    stack: Stack, lambda_context: LambdaContext, clients: FunctionClients
) -> None:
    short_sessions = registrar(clients, session_ttl_seconds=60)  # inside the refresh margin
    token = stack.marketplace.issue_token("new-style")

    first = _session_id(lambda_handler(form_post(token), lambda_context, registrar=short_sessions))
    again = lambda_handler(form_post(token), lambda_context, registrar=short_sessions)
    second = _session_id(again)

    assert first != second
    assert stack.marketplace.resolve_calls_for(token) == 1
    assert stack.customer(NEW_STYLE_PK)["registration_count"] == {"N": "1"}


@pytest.mark.handles_secrets(TOKEN)
def test_the_token_is_in_no_log_line_and_no_stored_item(
    stack: Stack,
    lambda_context: LambdaContext,
    fulfillment_url: Handler,
    function_logs: io.StringIO,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given every path a token can take: success, replay, each Marketplace error, a retry page
    tokens = []
    for fault in (None, None, "throttle", "internal", "disabled", "expired", "other-product"):
        stack.marketplace.reset()
        customer = "other-product" if fault == "other-product" else "new-style"
        token = stack.marketplace.issue_token(customer)
        tokens.append(token)
        if fault == "throttle":
            stack.marketplace.throttle_next(10)
        elif fault == "internal":
            stack.marketplace.internal_error_next(10)
        elif fault == "disabled":
            stack.marketplace.set_disabled(True)
        elif fault == "expired":
            stack.marketplace.set_expire_after(0)
        fulfillment_url(form_post(token), lambda_context)
        fulfillment_url(form_post(token), lambda_context)
    invalid = "Invalid+Token/Value=="
    tokens.append(invalid)
    fulfillment_url(form_post(invalid), lambda_context)

    # Then no log line at any level, no metric and no stored item holds any of them
    captured = all_logs(function_logs, caplog) + capsys.readouterr().out
    stored = json.dumps(stack.items()) + json.dumps(stack.items(stack.idempotency_table))
    assert "111122223333" not in function_logs.getvalue()
    for token in tokens:
        assert token not in captured
        assert token not in stored
    assert any(r.levelname == "DEBUG" for r in caplog.records)  # DEBUG really was on
