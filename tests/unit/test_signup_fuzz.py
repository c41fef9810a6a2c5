"""The whole sign-up page handler over hostile requests (hypothesis), its store faked.

Whatever arrives: no 5xx but the injected storage outage, contact details stored only with
the right CSRF token, only from allow-listed fields and only when they pass the rules
(checked here independently of contacts.py), markup never echoed raw, the security headers
on every answer, and a redirect only to SIGNUP_COMPLETE_URL.
"""

from __future__ import annotations

import string
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fulfillment.core.errors import StorageUnavailableError
from fulfillment.core.pages import render
from fulfillment.customers.models import ContactDetails, CustomerRecord, SignupSession
from fulfillment.signup import handler as signup
from fulfillment.signup import pages
from fulfillment.signup.settings import ExtraField, SignupSettings
from local.gateway import LambdaContext
from tests.events import rest_event
from tests.secrets_registry import registry
from tests.unit.hostile_requests import (
    FORM,
    MARKUP,
    PAGE_BYTES,
    assert_no_unescaped_echo,
    assert_security_headers,
    hostile_text,
    input_strings,
    requests,
)

REGISTRATION = "r3g1strat10n_1d-0123456789abcdefg"
UNKNOWN_REGISTRATION = "unkn0wn_r3g1strat10n-0123456789ab"
CSRF = "csrf-T0k3n_0123456789abcdefghijklmnopqrstuvw"
COMPLETE_URL = "https://app.example.com/welcome?from=aws"
EXTRA = (ExtraField("vat_number", "VAT number", False, 20),)
LIMITS = {"company": 200, "contact_name": 200, "email": 254, "phone": 40, "vat_number": 20}
REQUIRED = ("company", "contact_name", "email")
# The form's own fields: everything else a client posts must be ignored.
FORM_FIELDS = ("registration", "csrf_token", *LIMITS)
CONTEXT = LambdaContext(
    function_name="fulfillment-signup",
    memory_limit_in_mb=512,
    timeout_seconds=20,
    log_stream_name="2026/11/26/[$LATEST]fuzz",
)


@dataclass
class FakeSignupStore:
    """One open session (REGISTRATION); optionally every write fails."""

    failing: bool = False
    stored: list[ContactDetails] = field(default_factory=list)

    def get_session(self, session_id: str) -> SignupSession | None:
        if session_id != REGISTRATION:
            return None
        return SignupSession(
            session_id=REGISTRATION,
            customer_key="LICENSE#l-fuzz",
            product_code="prod-fuzz",
            expires_at=4_000_000_000,
            csrf_token=CSRF,
            completed=False,
        )

    def get_customer(self, customer_key: str) -> CustomerRecord | None:
        return None

    def complete_signup(
        self, session: SignupSession, contact: ContactDetails, at: datetime
    ) -> None:
        if self.failing:
            raise StorageUnavailableError("ProvisionedThroughputExceededException")
        self.stored.append(contact)


# --------------------------------------------------------------------------- the rules
# Written from docs/signup.md, not from contacts.py.


def has_control(value: str) -> bool:
    return any(
        unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp")
        or "\u202a" <= c <= "\u202e"
        or "\u2066" <= c <= "\u2069"
        or c == "\ufeff"
        for c in value
    )


def email_shaped(value: str) -> bool:
    local, at, domain = value.rpartition("@")
    return (
        bool(at)
        and 0 < len(local) <= 64
        and "@" not in local
        and not any(c.isspace() for c in value)
        and "." in domain.strip(".")
        and len(value) <= 254
    )


def phone_shaped(value: str) -> bool:
    return (
        all(c in string.digits + " +().-" for c in value) and sum(c.isdigit() for c in value) >= 4
    )


# --------------------------------------------------------------------------- requests

emails = st.one_of(st.emails(), st.sampled_from(["a@b", "@x.io", "x@@y.io", "<a>@x.io"]))
values_of = {
    "company": st.one_of(hostile_text, st.sampled_from(MARKUP), st.just("Example Corp")),
    "contact_name": st.one_of(hostile_text, st.just("Jane Q. Buyer")),
    "email": st.one_of(emails, hostile_text),
    "phone": st.one_of(st.just("+1 (555) 010-0000"), hostile_text),
    "vat_number": st.one_of(st.just("DE123456789"), hostile_text, st.just("9" * 21)),
}


@st.composite
def signup_posts(draw: st.DrawFn) -> dict[str, Any]:
    """A browser-encoded POST of the form, with the CSRF token right, wrong or missing."""
    fields: list[tuple[str, str]] = [("registration", draw(registrations))]
    csrf = draw(st.sampled_from(["right", "wrong", "missing", "twice", "other"]))
    if csrf != "missing":
        wrong = {"wrong": CSRF[:-1] + "x", "other": draw(hostile_text)}
        fields.append(("csrf_token", wrong.get(csrf, CSRF)))
    if csrf == "twice":
        fields.append(("csrf_token", CSRF + "x"))
    for name, strategy in values_of.items():
        if draw(st.integers(0, 9)):
            fields.append((name, draw(strategy)))
    fields += draw(st.lists(st.tuples(hostile_text, hostile_text), max_size=3))
    fields = [(n, v) for n, v in draw(st.permutations(fields)) if _encodable(n + v)]
    event = rest_event(
        method="POST",
        body=urlencode(fields),
        content_type=draw(st.sampled_from([FORM, f"{FORM}; charset=UTF-8"])),
        base64_body=draw(st.booleans()),
    )
    event["resource"] = event["path"] = "/signup"
    return event


def _encodable(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


registrations = st.sampled_from([REGISTRATION, REGISTRATION, UNKNOWN_REGISTRATION, "x", ""])
names = st.one_of(st.sampled_from(FORM_FIELDS), hostile_text)
field_values = st.one_of(
    st.sampled_from([REGISTRATION, UNKNOWN_REGISTRATION, CSRF]), *values_of.values()
)


@pytest.fixture(scope="module")
def template_text() -> str:
    from fulfillment.signup.contacts import field_rules

    rules = field_rules(EXTRA)
    every_page = {*(entry.page for entry in pages.ERRORS.values()), pages.SIGNUP_COMPLETED}
    rendered = [render(page, reference="r", retry_href="/x")["body"] for page in every_page]
    rendered.append(
        pages.render_signup_form(
            rules,
            registration="r",
            csrf_token="c",
            errors={r.name: "e" for r in rules},
            notice="n",
        )["body"]
    )
    return "".join(rendered)


def _invoke(
    event: dict[str, Any], failing: bool, complete_url: str | None
) -> tuple[dict[str, Any], FakeSignupStore]:
    store = FakeSignupStore(failing=failing)
    configured = SignupSettings(
        customers_table_name="customers",
        contacts_table_name="contacts",
        signup_complete_url=complete_url,
        signup_extra_fields=EXTRA,
    )
    # Values drawn here are no secrets, and short ones would match log text by chance.
    with registry.paused():
        response = signup.lambda_handler(event, CONTEXT, settings=configured, store=store)
    return response, store


def _posted(event: dict[str, Any]) -> dict[str, list[str]]:
    """The form as the browser posted it (these events are always well-formed forms)."""
    body = event["body"] or ""
    if event["isBase64Encoded"]:
        import base64

        body = base64.b64decode(body).decode()
    return parse_qs(body, keep_blank_values=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    event=st.one_of(signup_posts(), requests(names, field_values)),
    failing=st.booleans(),
    complete_url=st.sampled_from([None, COMPLETE_URL]),
)
def test_any_request_gets_a_safe_answer_and_only_valid_contacts_are_stored(
    template_text: str,
    event: dict[str, Any],
    failing: bool,
    complete_url: str | None,
) -> None:
    # When the sign-up handler answers whatever arrived
    response, store = _invoke(event, failing, complete_url)

    # Then: no 5xx but the injected storage outage
    status, body = response["statusCode"], response["body"]
    assert status < 500 or (status == 503 and failing), (status, body[:300])
    assert_security_headers(response)
    if store.stored:
        # Stored only for the open session, with its CSRF token, from a well-formed form
        posted = _posted(event)
        assert event["httpMethod"] == "POST"
        assert posted.get("csrf_token") == [CSRF]
        assert set(posted.get("registration") or []) | set(
            (event.get("multiValueQueryStringParameters") or {}).get("registration") or []
        ) == {REGISTRATION}
        assert len(store.stored) == 1
        _check_stored(store.stored[0], posted)
    if status == 303:
        assert store.stored and complete_url is not None
        location = response["headers"]["Location"]
        assert location.startswith(COMPLETE_URL.split("?")[0] + "?"), location
        assert parse_qs(urlsplit(location).query)["registration"] == [REGISTRATION]
        return
    # nothing the client sent echoed raw; the body bounded by what was sent
    assert_no_unescaped_echo(body, input_strings(event), template_text)
    sent = len((event.get("body") or "").encode("utf-8", "surrogatepass"))
    assert len(body.encode("utf-8", "surrogatepass")) < PAGE_BYTES + 2 * sent


def _check_stored(contact: ContactDetails, posted: dict[str, list[str]]) -> None:
    stored = {
        "company": contact.company,
        "contact_name": contact.contact_name,
        "email": contact.email,
        "phone": contact.phone or "",
        **dict(contact.extra),
    }
    assert set(stored) <= set(LIMITS), stored  # allow-listed fields only
    for name, value in stored.items():
        submitted = (posted.get(name) or [""])[0]
        # the value comes from its own field, cleaned (NFC, outer whitespace) and nothing else
        assert value == unicodedata.normalize("NFC", submitted).strip(), name
        assert len(value) <= LIMITS[name], name
        assert not has_control(value), name
        if name in REQUIRED:
            assert value, name
    assert email_shaped(contact.email), contact.email
    assert not contact.phone or phone_shaped(contact.phone), contact.phone


@settings(max_examples=100, deadline=None)
@given(
    csrf=st.one_of(st.none(), hostile_text, st.sampled_from([CSRF + "x", CSRF[:-1], CSRF.upper()])),
    duplicate=st.booleans(),
)
def test_without_the_sessions_csrf_token_nothing_is_stored(
    csrf: str | None, duplicate: bool
) -> None:
    # Given a valid form whose CSRF token is missing, wrong, or sent twice with a wrong one
    fields = [
        ("registration", REGISTRATION),
        ("company", "Example Corp"),
        ("contact_name", "Jane Q. Buyer"),
        ("email", "jane@example.com"),
    ]
    if csrf is not None:
        fields.append(("csrf_token", csrf))
    if duplicate:
        fields.append(("csrf_token", CSRF))
    if [v for n, v in fields if n == "csrf_token"] == [CSRF] or not _encodable(str(csrf)):
        return
    event = rest_event(method="POST", body=urlencode(fields))
    event["resource"] = event["path"] = "/signup"

    # When
    response, store = _invoke(event, False, None)

    # Then
    assert response["statusCode"] == 403
    assert store.stored == []
    assert_security_headers(response)
