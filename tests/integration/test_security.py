"""Nobody let in: security headers on every answer of every handler, redirects only to
configured targets, CSRF on the sign-up form. Real handlers, moto DynamoDB, the stand-in.

(IAM least privilege, the WAF rate rule and cdk-nag are asserted on the synthesized template
in tests/infrastructure/test_stack.py; the log scan runs over the whole suite, tests/conftest.py.)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from fulfillment.core.errors import ConfigurationError
from fulfillment.registration import handler as registration_handler
from fulfillment.registration.settings import load_settings
from fulfillment.signup.settings import load_signup_settings
from local.gateway import LambdaContext
from tests.conftest import captured_output
from tests.events import TOKEN_FIELD, form_post, rest_event
from tests.handoff_events import registration_request
from tests.integration.conftest import (
    REGISTRATION_URL,
    TRIAL_URL,
    FunctionClients,
    Handler,
    Stack,
    registrar,
    signup_with,
)
from tests.secrets_registry import TOKEN, registry

CONTACT = {
    "company": "Secure Widgets Ltd",
    "contact_name": "Rosalind Example",
    "email": "rosalind.example@widgets.example",
    "phone": "+44 20 7946 0000",
}
COMPLETE_URL = "https://app.example.com/welcome?from=aws"
HOSTILE_HEADERS = {
    "Host": "evil.example",
    "X-Forwarded-Host": "evil.example",
    "Origin": "https://evil.example",
    "Referer": "https://evil.example/",
}
HOSTILE_QUERY = {
    "next": ["https://evil.example/"],
    "redirect": ["//evil.example"],
    "registration": ["attacker"],
}
EXPECTED_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass
class Surfaces:
    """This stack and the three buyer-facing handlers, their dependencies injected."""

    stack: Stack
    fulfillment_url: Handler
    signup_page: Handler
    seller_handoff: Handler


@pytest.fixture
def secured(
    stack: Stack, fulfillment_url: Handler, signup_page: Handler, seller_handoff: Handler
) -> Surfaces:
    return Surfaces(stack, fulfillment_url, signup_page, seller_handoff)


def _register(surfaces: Surfaces, context: LambdaContext) -> str:
    token = surfaces.stack.marketplace.issue_token("new-style")
    response = surfaces.fulfillment_url(form_post(token), context)
    assert response["statusCode"] == 303, response["body"]
    return parse_qs(urlsplit(response["headers"]["Location"]).query)["registration"][0]


def _csrf(stack: Stack, registration: str) -> str:
    item = stack.dynamodb.get_item(
        TableName=stack.customers_table,
        Key={"pk": {"S": f"SESSION#{registration}"}, "sk": {"S": "SESSION"}},
        ConsistentRead=True,
    )["Item"]
    return str(item["csrf_token"]["S"])


def _signup_event(method: str, **kwargs: Any) -> dict[str, Any]:
    event = rest_event(method=method, **kwargs)
    event["resource"] = event["path"] = event["requestContext"]["resourcePath"] = "/signup"
    event["requestContext"]["path"] = "/prod/signup"
    return event


def _signup_get(registration: str) -> dict[str, Any]:
    return _signup_event(
        "GET", body=None, content_type=None, query={"registration": [registration]}
    )


def _signup_post(fields: dict[str, str] | list[tuple[str, str]]) -> dict[str, Any]:
    return _signup_event("POST", body=urlencode(fields))


# --------------------------------------------------------------------------- security headers

Answer = Callable[[Surfaces, LambdaContext], dict[str, Any]]


def _fulfillment_landing(s: Surfaces, context: LambdaContext) -> dict[str, Any]:
    return s.fulfillment_url(rest_event(method="GET", body=None, content_type=None), context)


def _fulfillment_redirect(s: Surfaces, context: LambdaContext) -> dict[str, Any]:
    return s.fulfillment_url(form_post(s.stack.marketplace.issue_token("new-style")), context)


def _fulfillment_resubmission(s: Surfaces, context: LambdaContext) -> dict[str, Any]:
    event = form_post(s.stack.marketplace.issue_token("new-style"))
    s.fulfillment_url(event, context)
    return s.fulfillment_url(event, context)


def _fulfillment_malformed(s: Surfaces, context: LambdaContext) -> dict[str, Any]:
    return s.fulfillment_url(form_post("not a token"), context)


def _fulfillment_oversized(s: Surfaces, context: LambdaContext) -> dict[str, Any]:
    return s.fulfillment_url(rest_event(body=f"{TOKEN_FIELD}=" + "a" * 70_000), context)


def _fulfillment_invalid_token(s: Surfaces, context: LambdaContext) -> dict[str, Any]:
    return s.fulfillment_url(form_post("never-issued-token"), context)


def _fulfillment_throttled(s: Surfaces, context: LambdaContext) -> dict[str, Any]:
    token = s.stack.marketplace.issue_token("new-style")
    s.stack.marketplace.throttle_next(10)
    return s.fulfillment_url(form_post(token), context)


def _signup_form(s: Surfaces, context: LambdaContext) -> dict[str, Any]:
    return s.signup_page(_signup_get(_register(s, context)), context)


def _signup_unknown(s: Surfaces, context: LambdaContext) -> dict[str, Any]:
    return s.signup_page(_signup_get("unknown_registration_0123456789ab"), context)


def _signup_malformed(s: Surfaces, context: LambdaContext) -> dict[str, Any]:
    return s.signup_page(_signup_get("<script>"), context)


def _signup_invalid(s: Surfaces, context: LambdaContext) -> dict[str, Any]:
    registration = _register(s, context)
    fields = {"registration": registration, "csrf_token": _csrf(s.stack, registration)}
    return s.signup_page(_signup_post({**fields, **CONTACT, "email": "nope"}), context)


def _signup_completed(s: Surfaces, context: LambdaContext) -> dict[str, Any]:
    registration = _register(s, context)
    fields = {"registration": registration, "csrf_token": _csrf(s.stack, registration)}
    return s.signup_page(_signup_post({**fields, **CONTACT}), context)


def _signup_csrf_refused(s: Surfaces, context: LambdaContext) -> dict[str, Any]:
    registration = _register(s, context)
    return s.signup_page(_signup_post({"registration": registration, **CONTACT}), context)


def _handoff_found(s: Surfaces, context: LambdaContext) -> dict[str, Any]:
    return s.seller_handoff(registration_request(_register(s, context)), context)


def _handoff_not_found(s: Surfaces, context: LambdaContext) -> dict[str, Any]:
    return s.seller_handoff(registration_request("unknown_registration_0123456789ab"), context)


def _handoff_malformed(s: Surfaces, context: LambdaContext) -> dict[str, Any]:
    return s.seller_handoff(registration_request("<bad>"), context)


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        (_fulfillment_landing, 200),
        (_fulfillment_redirect, 303),
        (_fulfillment_resubmission, 303),
        (_fulfillment_malformed, 400),
        (_fulfillment_oversized, 413),
        (_fulfillment_invalid_token, 400),
        (_fulfillment_throttled, 503),
        (_signup_form, 200),
        (_signup_unknown, 410),
        (_signup_malformed, 400),
        (_signup_invalid, 400),
        (_signup_completed, 200),
        (_signup_csrf_refused, 403),
        (_handoff_found, 200),
        (_handoff_not_found, 404),
        (_handoff_malformed, 400),
    ],
    ids=lambda value: value.__name__.lstrip("_") if callable(value) else str(value),
)
def test_every_answer_carries_the_security_headers(
    secured: Surfaces, lambda_context: LambdaContext, answer: Answer, status: int
) -> None:
    # When
    response = answer(secured, lambda_context)

    # Then
    assert response["statusCode"] == status, response["body"][:500]
    headers = response["headers"]
    for name, value in EXPECTED_HEADERS.items():
        assert headers[name] == value
    assert headers["Strict-Transport-Security"].startswith("max-age=")
    assert int(headers["Strict-Transport-Security"].split("=")[1].split(";")[0]) >= 31_536_000
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "script-src" not in csp and "unsafe-inline" not in csp


# --------------------------------------------------------------------------- no open redirect


def _hostile(event: dict[str, Any], context_path: str) -> dict[str, Any]:
    event["headers"].update(HOSTILE_HEADERS)
    event["multiValueHeaders"].update({k: [v] for k, v in HOSTILE_HEADERS.items()})
    event["multiValueQueryStringParameters"] = HOSTILE_QUERY
    event["queryStringParameters"] = {k: v[-1] for k, v in HOSTILE_QUERY.items()}
    event["requestContext"]["path"] = context_path
    return event


@pytest.mark.parametrize("context_path", ["/prod/", "//evil.example/", "/\\evil.example/"])
@pytest.mark.parametrize("free_trial", [False, True])
def test_the_fulfillment_redirect_goes_to_the_configured_url_whatever_the_request_says(
    secured: Surfaces, lambda_context: LambdaContext, context_path: str, free_trial: bool
) -> None:
    # Given a registration request with hostile host headers, query and path
    token = secured.stack.marketplace.issue_token("new-style")
    event = _hostile(form_post(token, free_trial=free_trial), context_path)

    # When
    response = secured.fulfillment_url(event, lambda_context)

    # Then
    assert response["statusCode"] == 303
    location = response["headers"]["Location"]
    expected = TRIAL_URL if free_trial else REGISTRATION_URL
    assert location.startswith(expected.split("?")[0] + "?")
    assert "evil" not in location and "attacker" not in location


@pytest.mark.parametrize("context_path", ["/prod/", "//evil.example/", "/\\evil.example/"])
def test_the_builtin_signup_redirect_stays_on_this_origin(
    stack: Stack, clients: FunctionClients, lambda_context: LambdaContext, context_path: str
) -> None:
    # Given no REGISTRATION_URL: buyers go to the built-in sign-up page
    builtin = registrar(clients, registration_url=None)
    event = _hostile(form_post(stack.marketplace.issue_token("new-style")), context_path)

    # When
    response = registration_handler.lambda_handler(event, lambda_context, registrar=builtin)

    # Then a path on this origin, never a scheme, host or protocol-relative reference
    location = response["headers"]["Location"]
    expected_path = "/prod/signup" if context_path == "/prod/" else "/signup"
    assert urlsplit(location).path == expected_path, location
    assert not urlsplit(location).netloc and location.startswith(expected_path + "?")


def test_the_signup_redirect_goes_to_signup_complete_url_whatever_the_request_says(
    secured: Surfaces, clients: FunctionClients, lambda_context: LambdaContext
) -> None:
    # Given SIGNUP_COMPLETE_URL and a completed form with hostile headers and query
    signup_page = signup_with(clients, SIGNUP_COMPLETE_URL=COMPLETE_URL)
    registration = _register(secured, lambda_context)
    fields = {"registration": registration, "csrf_token": _csrf(secured.stack, registration)}
    event = _signup_post({**fields, **CONTACT, "next": "https://evil.example/"})
    event["headers"].update(HOSTILE_HEADERS)
    event["queryStringParameters"] = {"next": "https://evil.example/"}
    event["multiValueQueryStringParameters"] = {"next": ["https://evil.example/"]}

    # When
    response = signup_page(event, lambda_context)

    # Then
    assert response["statusCode"] == 303
    location = response["headers"]["Location"]
    assert location.startswith("https://app.example.com/welcome?")
    assert parse_qs(urlsplit(location).query) == {"from": ["aws"], "registration": [registration]}


@pytest.mark.parametrize(
    "target",
    [
        "http://app.example.com/signup",
        "//evil.example/signup",
        "javascript:alert(1)",
        "/relative/signup",
        "https://app.example.com/signup#fragment",
        "ftp://app.example.com/",
    ],
)
@pytest.mark.parametrize(
    ("variable", "load"),
    [
        ("REGISTRATION_URL", load_settings),
        ("TRIAL_REGISTRATION_URL", load_settings),
        ("SIGNUP_COMPLETE_URL", load_signup_settings),
    ],
)
def test_configuration_refuses_redirect_targets_that_are_not_https(
    stack: Stack, target: str, variable: str, load: Callable[[dict[str, str]], Any]
) -> None:
    environ = {**os.environ, variable: target}

    with pytest.raises(ConfigurationError) as raised:
        load(environ)

    assert raised.value.variable == variable


def test_a_non_https_registration_url_fails_closed_without_a_redirect(
    stack: Stack, lambda_context: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the deployed wiring (no registrar passed in), its environment naming an http URL
    monkeypatch.setenv("REGISTRATION_URL", "http://evil.example/signup")

    response = registration_handler.lambda_handler(
        form_post(stack.marketplace.issue_token("new-style")), lambda_context
    )

    assert response["statusCode"] == 500
    assert "Location" not in response["headers"]


# --------------------------------------------------------------------------- CSRF


def _contacts_stored(stack: Stack) -> list[dict[str, Any]]:
    return stack.items(stack.contacts_table)


def _rejections(stdout: str) -> list[str]:
    """The Reason of every SignupRejected metric in ``stdout``."""
    return [
        blob["Reason"]
        for blob in map(json.loads, (x for x in stdout.splitlines() if x.startswith('{"_aws"')))
        for directive in blob["_aws"]["CloudWatchMetrics"]
        for metric in directive["Metrics"]
        if metric["Name"] == "SignupRejected"
    ]


@pytest.mark.parametrize("case", ["missing", "wrong", "another registration's", "twice"])
def test_the_signup_form_without_its_own_csrf_token_is_refused_and_nothing_stored(
    secured: Surfaces,
    lambda_context: LambdaContext,
    capsys: pytest.CaptureFixture[str],
    case: str,
) -> None:
    # Given two registrations, each with its own sign-up session and CSRF token
    registration = _register(secured, lambda_context)
    other = _register(secured, lambda_context)
    own, others = _csrf(secured.stack, registration), _csrf(secured.stack, other)
    assert own != others
    fields: list[tuple[str, str]] = [("registration", registration), *CONTACT.items()]
    if case == "wrong":
        fields.append(("csrf_token", own[:-2] + ("AA" if own[-2:] != "AA" else "BB")))
    elif case == "another registration's":
        fields.append(("csrf_token", others))
    elif case == "twice":
        fields += [("csrf_token", own), ("csrf_token", others)]

    capsys.readouterr()

    # When
    response = secured.signup_page(_signup_post(fields), lambda_context)

    # Then it is refused, and counted as such
    assert response["statusCode"] == 403
    assert "could not accept this form" in response["body"]
    assert _rejections(capsys.readouterr().out) == ["CsrfMismatch"]
    assert _contacts_stored(secured.stack) == []
    session = secured.stack.dynamodb.get_item(
        TableName=secured.stack.customers_table,
        Key={"pk": {"S": f"SESSION#{registration}"}, "sk": {"S": "SESSION"}},
        ConsistentRead=True,
    )["Item"]
    assert "completed_at" not in session
    # and the right token still works afterwards: the refusal spent nothing
    fields = [("registration", registration), ("csrf_token", own), *CONTACT.items()]
    assert secured.signup_page(_signup_post(fields), lambda_context)["statusCode"] == 200
    assert len(_contacts_stored(secured.stack)) == 1


# --------------------------------------------------------------------------- the log scan


@pytest.mark.handles_secrets(TOKEN)
def test_the_suite_wide_log_scan_sees_this_functions_logs_and_its_token(
    stack: Stack, lambda_context: LambdaContext
) -> None:
    # Given a token the stand-in issued, registered by the suite's hook
    token = stack.marketplace.issue_token("new-style")
    assert registry.secrets().get(token) == "registration token"
    event = form_post(token)
    request_id = event["requestContext"]["requestId"]

    # When the function handles it
    registration_handler.lambda_handler(event, lambda_context)

    # Then its log lines reached the capture the session scans (and hold no token)
    lines = [text for _, text in captured_output() if request_id in text]
    assert any('"message":"registration handed off"' in line for line in lines)
    assert registry.scan(("captured", line) for line in lines) == []
