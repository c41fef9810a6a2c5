"""The built-in sign-up page: the real handler, real-shaped events, moto's DynamoDB server.

Each test registers a buyer through fulfillment.api first (a stand-in token, as Marketplace
would send it), then drives fulfillment.signup with the registration id it handed out.
"""

from __future__ import annotations

import io
import json
import os
import time
from functools import cache, partial
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import boto3
import pytest

from fulfillment.core import aws
from fulfillment.customers.store import DynamoDBCustomerStore
from fulfillment.registration.handler import lambda_handler as register_handler
from fulfillment.signup.handler import lambda_handler as signup_handler
from fulfillment.signup.settings import load_signup_settings
from local.gateway import LambdaContext
from tests.events import form_post, rest_event
from tests.integration.conftest import FunctionClients, Handler, Stack, all_logs, signup_with
from tests.retries import without_backoff
from tests.secrets_registry import CONTACT as CONTACT_DETAIL
from tests.secrets_registry import TOKEN

NEW_STYLE_PK = "LICENSE#l-0123456789abcdef0123456789abcdef"
CONTACT = {
    "company": "Example Corp",
    "contact_name": "Jane Q. Buyer",
    "email": "jane.buyer@example.com",
    "phone": "+1 (555) 010-0000",
}
EXTRA_FIELDS = json.dumps(
    [
        {"name": "vat_number", "label": "VAT number", "required": True, "max_length": 20},
        {"name": "team_size", "label": "Team size", "required": False, "max_length": 5},
    ]
)


@pytest.fixture
def signup(stack: Stack) -> Stack:
    return stack


@cache
def _unreachable_dynamodb() -> Any:
    """A client of the functions' configuration for an endpoint nothing listens on (retried as
    configured, without the backoff sleeps); one for the module: building one costs."""
    session = boto3.session.Session()
    return without_backoff(
        session.client("dynamodb", endpoint_url="http://127.0.0.1:9", config=aws.DYNAMODB_CONFIG)
    )


def _with_dynamodb_unreachable() -> Handler:
    """The sign-up handler with its store on a DynamoDB endpoint nothing listens on."""
    settings = load_signup_settings(os.environ)
    store = DynamoDBCustomerStore(
        _unreachable_dynamodb(),
        settings.customers_table_name,
        contacts_table_name=settings.contacts_table_name,
    )
    return partial(signup_handler, settings=settings, store=store)


def _register(stack: Stack, context: LambdaContext, customer: str = "new-style") -> str:
    response = register_handler(form_post(stack.marketplace.issue_token(customer)), context)
    assert response["statusCode"] == 303, response.get("body")
    return parse_qs(urlsplit(response["headers"]["Location"]).query)["registration"][0]


def _signup_event(method: str, **kwargs: Any) -> dict[str, Any]:
    event = rest_event(method=method, **kwargs)
    event["resource"] = event["path"] = event["requestContext"]["resourcePath"] = "/signup"
    event["requestContext"]["path"] = "/prod/signup"
    return event


def get(page: Handler, context: LambdaContext, registration: str | list[str]) -> dict[str, Any]:
    values = registration if isinstance(registration, list) else [registration]
    event = _signup_event("GET", body=None, content_type=None, query={"registration": values})
    return page(event, context)


def post(
    page: Handler,
    context: LambdaContext,
    fields: dict[str, str] | list[tuple[str, str]],
    **kwargs: Any,
) -> dict[str, Any]:
    return page(_signup_event("POST", body=urlencode(fields), **kwargs), context)


def _session(stack: Stack, registration: str) -> dict[str, Any]:
    item: dict[str, Any] = stack.dynamodb.get_item(
        TableName=stack.customers_table,
        Key={"pk": {"S": f"SESSION#{registration}"}, "sk": {"S": "SESSION"}},
        ConsistentRead=True,
    )["Item"]
    return item


def _contacts(stack: Stack) -> list[dict[str, Any]]:
    return stack.items(stack.contacts_table)


def _form(stack: Stack, registration: str, **fields: str) -> dict[str, str]:
    """A complete, valid submission of the form for ``registration``."""
    csrf = _session(stack, registration)["csrf_token"]["S"]
    return {"registration": registration, "csrf_token": csrf, **CONTACT, **fields}


def _metrics(stdout: str) -> list[tuple[str, dict[str, Any]]]:
    emitted = []
    for line in stdout.splitlines():
        if line.startswith('{"_aws"'):
            blob = json.loads(line)
            for directive in blob["_aws"]["CloudWatchMetrics"]:
                for metric in directive["Metrics"]:
                    emitted.append((metric["Name"], blob))
    return emitted


def _rejections(stdout: str) -> list[str]:
    return [blob["Reason"] for name, blob in _metrics(stdout) if name == "SignupRejected"]


def _nothing_stored(stack: Stack, registration: str) -> bool:
    customer = stack.customer(NEW_STYLE_PK) or {}
    session = _session(stack, registration)
    return not _contacts(stack) and "signed_up_at" not in customer and "completed_at" not in session


# --------------------------------------------------------------------------- GET


def test_form_carries_the_sessions_csrf_token_labels_and_the_registration(
    signup: Stack, signup_page: Handler, lambda_context: LambdaContext
) -> None:
    # Given a buyer handed over from the fulfillment URL
    registration = _register(signup, lambda_context)

    # When their browser opens the sign-up link
    response = get(signup_page, lambda_context, registration)

    # Then the form is shown, with the session's CSRF token and the registration hidden in it
    assert response["statusCode"] == 200
    body = response["body"]
    csrf = _session(signup, registration)["csrf_token"]["S"]
    assert f'<input type="hidden" name="csrf_token" value="{csrf}">' in body
    assert f'<input type="hidden" name="registration" value="{registration}">' in body
    # And every input has its label, autocomplete hint and the right type
    for name, kind, autocomplete in (
        ("company", "text", "organization"),
        ("contact_name", "text", "name"),
        ("email", "email", "email"),
        ("phone", "tel", "tel"),
    ):
        assert f'<label for="{name}">' in body
        assert f'id="{name}" name="{name}" type="{kind}"' in body
        assert f'autocomplete="{autocomplete}"' in body
    assert body.count(" required") == 3  # phone is optional
    assert "(optional)" in body
    assert 'role="alert"' not in body
    # And the page has the fulfillment pages' security headers, posting only to itself
    headers = response["headers"]
    assert "form-action 'self'" in headers["Content-Security-Policy"]
    assert "script-src" not in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Cache-Control"] == "no-store"
    assert "<script" not in body and "http://" not in body


def test_configured_extra_fields_appear_in_the_form(
    signup: Stack, lambda_context: LambdaContext, clients: FunctionClients
) -> None:
    signup_page = signup_with(clients, SIGNUP_EXTRA_FIELDS=EXTRA_FIELDS)
    registration = _register(signup, lambda_context)

    body = get(signup_page, lambda_context, registration)["body"]

    assert '<label for="vat_number">VAT number</label>' in body
    assert '<label for="team_size">Team size (optional)</label>' in body
    assert body.count(" required") == 4


def test_expired_registration_gets_a_gone_page_with_the_way_back_to_marketplace(
    signup: Stack,
    signup_page: Handler,
    lambda_context: LambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a registration whose session expired but was not yet deleted by TTL
    registration = _register(signup, lambda_context)
    form = _form(signup, registration)
    signup.dynamodb.update_item(
        TableName=signup.customers_table,
        Key={"pk": {"S": f"SESSION#{registration}"}, "sk": {"S": "SESSION"}},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 1)}},
    )
    capsys.readouterr()

    # When the buyer opens the link, or posts the form they still have open
    shown = get(signup_page, lambda_context, registration)
    posted = post(signup_page, lambda_context, form)

    # Then both answer 410 with a link to their Marketplace subscriptions, and nothing is stored
    for response in (shown, posted):
        assert response["statusCode"] == 410
        assert "has expired" in response["body"]
        assert "https://console.aws.amazon.com/marketplace/home#/subscriptions" in response["body"]
        assert "<form" not in response["body"]
    assert _nothing_stored(signup, registration)
    assert _rejections(capsys.readouterr().out) == ["ExpiredRegistration"] * 2


def test_unknown_registration_gets_the_same_gone_page(
    signup: Stack,
    signup_page: Handler,
    lambda_context: LambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    response = get(signup_page, lambda_context, "A" * 32)

    assert response["statusCode"] == 410
    assert "has expired" in response["body"]
    assert _rejections(capsys.readouterr().out) == ["UnknownRegistration"]


@pytest.mark.parametrize(
    "registration",
    [
        [""],
        ["short"],
        ["A" * 65],
        ["<script>alert(1)</script>AAAAAAAA"],
        ["AAAAAAAAAAAAAAAA/AAAAAAA"],
        ["A" * 32, "B" * 32],
    ],
)
def test_malformed_registration_id_is_refused_before_any_aws_call(
    signup: Stack, lambda_context: LambdaContext, registration: list[str]
) -> None:
    # Given DynamoDB is unreachable (any call would end in a 503, not a 400)
    unreachable = _with_dynamodb_unreachable()

    response = get(unreachable, lambda_context, registration)

    assert response["statusCode"] == 400
    assert "not valid" in response["body"]
    assert "<script" not in response["body"]


def test_get_without_registration_is_400(
    signup: Stack, signup_page: Handler, lambda_context: LambdaContext
) -> None:
    event = _signup_event("GET", body=None, content_type=None)

    assert signup_page(event, lambda_context)["statusCode"] == 400


# --------------------------------------------------------------------------- POST


@pytest.mark.handles_secrets(TOKEN, CONTACT_DETAIL)
def test_valid_submission_stores_the_contact_apart_and_marks_the_sign_up_complete(
    signup: Stack,
    signup_page: Handler,
    lambda_context: LambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a registered buyer with the form open
    registration = _register(signup, lambda_context)
    form = _form(signup, registration, company="  Example Corp \t")
    capsys.readouterr()

    # When they submit it
    response = post(signup_page, lambda_context, form)

    # Then they see a confirmation
    assert response["statusCode"] == 200, response["body"]
    assert "your account is set up" in response["body"]
    assert "<form" not in response["body"]
    # And the contact details are in the contacts table, under the customer's key
    (contact,) = _contacts(signup)
    assert contact["pk"] == {"S": NEW_STYLE_PK}
    assert contact["company"] == {"S": "Example Corp"}  # surrounding whitespace stripped
    assert contact["contact_name"] == {"S": CONTACT["contact_name"]}
    assert contact["email"] == {"S": CONTACT["email"]}
    assert contact["phone"] == {"S": CONTACT["phone"]}
    assert contact["registration_id"] == {"S": registration}
    # And the customer is stamped signed up, without any personal data on it
    customer = signup.customer(NEW_STYLE_PK)
    assert customer is not None
    assert "signed_up_at" in customer
    assert not {"company", "contact_name", "email", "phone"} & set(customer)
    # And no item of the customers table (customer, session, or any other) holds any of them
    customers_table = signup.items()
    assert customers_table
    assert {item["sk"]["S"] for item in customers_table} == {"CUSTOMER", "SESSION"}  # no CONTACT
    stored = json.dumps(customers_table, ensure_ascii=False)
    assert [value for value in CONTACT.values() if value in stored] == []
    # And the session is used up
    assert "completed_at" in _session(signup, registration)
    # And operations see one completed sign-up
    assert [name for name, _ in _metrics(capsys.readouterr().out)].count("SignupCompleted") == 1


def test_extra_fields_are_validated_and_stored_and_nothing_else_is_kept(
    signup: Stack, lambda_context: LambdaContext, clients: FunctionClients
) -> None:
    signup_page = signup_with(clients, SIGNUP_EXTRA_FIELDS=EXTRA_FIELDS)
    registration = _register(signup, lambda_context)

    # When the required extra field is missing, the form comes back with its message
    missing = post(signup_page, lambda_context, _form(signup, registration))
    assert missing["statusCode"] == 400
    assert "VAT number is required" in missing["body"]

    # When it is given, along with fields the form never had
    form = _form(signup, registration, vat_number=" DE123456789 ", team_size="")
    smuggled = [*form.items(), ("status", "subscribed"), ("signed_up_at", "x"), ("pk", "X#1")]
    response = post(signup_page, lambda_context, smuggled)

    # Then the extra value is stored with the contact, and the unknown fields nowhere
    assert response["statusCode"] == 200, response["body"]
    (contact,) = _contacts(signup)
    assert contact["extra"] == {"M": {"vat_number": {"S": "DE123456789"}}}
    assert set(contact) == {
        *("pk", "company", "contact_name", "email", "phone"),
        *("extra", "registration_id", "updated_at"),
    }
    customer = signup.customer(NEW_STYLE_PK)
    assert customer is not None
    assert "status" not in customer
    assert customer["signed_up_at"]["S"] != "x"


def test_base64_encoded_form_body_is_read(
    signup: Stack, signup_page: Handler, lambda_context: LambdaContext
) -> None:
    registration = _register(signup, lambda_context)

    response = post(signup_page, lambda_context, _form(signup, registration), base64_body=True)

    assert response["statusCode"] == 200
    assert len(_contacts(signup)) == 1


def test_invalid_input_re_renders_the_form_with_messages_and_the_values_kept(
    signup: Stack,
    signup_page: Handler,
    lambda_context: LambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a buyer who mistypes their email, leaves the name blank and types letters as phone
    registration = _register(signup, lambda_context)
    form = _form(
        signup,
        registration,
        email="jane.buyer@example",
        contact_name="   ",
        phone="call me",
        company="Example & Sons",
    )
    capsys.readouterr()

    # When they submit
    response = post(signup_page, lambda_context, form)

    # Then the form comes back as 400, with a summary and each message tied to its field
    assert response["statusCode"] == 400
    body = response["body"]
    assert 'role="alert"' in body
    assert '<a href="#email">Enter an email address in the correct format' in body
    assert '<a href="#contact_name">Enter the contact&#39;s name</a>' in body
    assert 'aria-invalid="true" aria-describedby="email-error"' in body
    assert 'id="email-error"' in body and 'id="phone-error"' in body
    assert 'aria-describedby="company-error"' not in body
    # And what they typed is kept (escaped), with a fresh chance to submit
    assert 'value="jane.buyer@example"' in body
    assert 'value="Example &amp; Sons"' in body
    assert 'value="call me"' in body
    assert f'name="csrf_token" value="{form["csrf_token"]}"' in body
    # And nothing was stored
    assert _nothing_stored(signup, registration)
    assert _rejections(capsys.readouterr().out) == ["InvalidInput"]

    # When they correct it, the same form goes through
    corrected = post(signup_page, lambda_context, _form(signup, registration))
    assert corrected["statusCode"] == 200


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("contact_name", "Ada\u200bLovelace", "Contact name must not contain invisible characters"),
        ("company", "Widgets\U000e0041", "Company must not contain invisible characters"),
        ("email", "jane@xn--zz.example", "Enter an email address in the correct format"),
        ("email", "jane@example\u3002com", "Enter an email address in the correct format"),
    ],
)
def test_invisible_characters_and_bad_domains_get_the_form_back_not_an_error_page(
    signup: Stack,
    signup_page: Handler,
    lambda_context: LambdaContext,
    field: str,
    value: str,
    message: str,
) -> None:
    # Given a buyer whose value looks fine on screen but is not
    registration = _register(signup, lambda_context)

    # When they submit it
    response = post(signup_page, lambda_context, _form(signup, registration, **{field: value}))

    # Then the form comes back (400) with the message on that field, and nothing is stored
    assert response["statusCode"] == 400
    assert f'<a href="#{field}">{message}' in response["body"]
    assert _nothing_stored(signup, registration)


def test_second_submission_duplicates_nothing_and_says_it_is_done(
    signup: Stack,
    signup_page: Handler,
    lambda_context: LambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a completed sign-up
    registration = _register(signup, lambda_context)
    assert post(signup_page, lambda_context, _form(signup, registration))["statusCode"] == 200
    (first,) = _contacts(signup)
    signed_up_at = (signup.customer(NEW_STYLE_PK) or {})["signed_up_at"]
    capsys.readouterr()

    # When the form is sent again (back button, double click), with other values
    again = post(signup_page, lambda_context, _form(signup, registration, company="Other Corp"))
    # And the link is opened again
    reopened = get(signup_page, lambda_context, registration)

    # Then both say the sign-up is done, without a form
    for response in (again, reopened):
        assert response["statusCode"] == 200
        assert "already sent" in response["body"]
        assert "console.aws.amazon.com/marketplace/home#/subscriptions" in response["body"]
        assert "<form" not in response["body"]
    # And there is still one contact item, unchanged, and the customer's stamp is the first
    assert _contacts(signup) == [first]
    assert (signup.customer(NEW_STYLE_PK) or {})["signed_up_at"] == signed_up_at
    assert _rejections(capsys.readouterr().out) == ["AlreadyCompleted"] * 2


def test_markup_in_every_field_comes_back_inert(
    signup: Stack, lambda_context: LambdaContext, clients: FunctionClients
) -> None:
    signup_page = signup_with(clients, SIGNUP_EXTRA_FIELDS=EXTRA_FIELDS)
    registration = _register(signup, lambda_context)
    markup = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    form = _form(
        signup,
        registration,
        **{name: markup for name in ("company", "contact_name", "email", "phone", "team_size")},
        vat_number=markup,
    )

    for response in (
        post(signup_page, lambda_context, form),  # every field invalid or too long: all echoed back
        post(signup_page, lambda_context, {**form, "registration": markup}),
        post(signup_page, lambda_context, {**form, "csrf_token": markup}),
        get(signup_page, lambda_context, markup),
    ):
        body = response["body"]
        assert response["statusCode"] in (400, 403)
        assert "<script" not in body and "<img" not in body
    echoed = post(signup_page, lambda_context, form)["body"]
    assert echoed.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 5


def test_signup_complete_url_redirects_with_only_the_registration_id(
    signup: Stack, lambda_context: LambdaContext, clients: FunctionClients
) -> None:
    signup_page = signup_with(
        clients, SIGNUP_COMPLETE_URL="https://app.example.com/welcome?from=aws"
    )
    registration = _register(signup, lambda_context)

    response = post(signup_page, lambda_context, _form(signup, registration))

    assert response["statusCode"] == 303
    location = response["headers"]["Location"]
    assert location == f"https://app.example.com/welcome?from=aws&registration={registration}"
    assert response["body"] == ""
    assert len(_contacts(signup)) == 1


@pytest.mark.handles_secrets(TOKEN, CONTACT_DETAIL)
def test_contact_details_never_reach_any_log_line(
    signup: Stack,
    signup_page: Handler,
    lambda_context: LambdaContext,
    function_logs: io.StringIO,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a buyer who first gets the form wrong, then right
    registration = _register(signup, lambda_context)
    wrong = _form(signup, registration, email="jane.buyer@@example.com")
    right = _form(signup, registration)

    # When both are submitted (and the form re-submitted once more)
    post(signup_page, lambda_context, wrong)
    post(signup_page, lambda_context, right)
    post(signup_page, lambda_context, right)

    # Then no log line carries what they typed, but the outcome and a pseudonym are logged
    logs = all_logs(function_logs, caplog) + capsys.readouterr().out
    for value in (*CONTACT.values(), "jane.buyer@@example.com", "jane.buyer", "010-0000"):
        assert value not in logs
    assert right["csrf_token"] not in logs
    assert registration not in logs
    assert "sign-up completed" in logs and "sign-up form invalid" in logs
    from fulfillment.core.ids import pseudonym

    assert pseudonym(NEW_STYLE_PK) in logs


def test_unreadable_form_body_is_400_and_oversized_is_413(
    signup: Stack, signup_page: Handler, lambda_context: LambdaContext
) -> None:
    bad = signup_page(_signup_event("POST", body="registration=%zz"), lambda_context)
    huge = signup_page(_signup_event("POST", body="a=" + "b" * 300_000), lambda_context)

    assert bad["statusCode"] == 400
    assert huge["statusCode"] == 413


def test_storage_outage_keeps_what_the_buyer_typed(
    signup: Stack, lambda_context: LambdaContext
) -> None:
    registration = _register(signup, lambda_context)
    form = _form(signup, registration)
    # Given DynamoDB became unreachable
    unreachable = _with_dynamodb_unreachable()

    # When the buyer submits, or opens the link
    posted = post(unreachable, lambda_context, form)
    shown = get(unreachable, lambda_context, registration)

    # Then the form comes back with their values and a Retry-After, and the page offers a retry
    assert posted["statusCode"] == 503
    assert posted["headers"]["Retry-After"] == "5"
    assert f'value="{CONTACT["email"]}"' in posted["body"]
    assert "Nothing was lost" in posted["body"]
    assert shown["statusCode"] == 503
    assert f'href="?registration={registration}"' in shown["body"]
