"""The whole fulfillment URL handler over hostile requests (hypothesis), registrar faked.

Whatever arrives: no 5xx but the injected Marketplace outage, no registration for a
malformed token (judged by this file's own reading of the request), no input echoed raw,
the security headers on every answer, a bounded body, and redirects only to configured
targets or the built-in sign-up page of this origin.
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fulfillment.core.pages import MARKETPLACE_SUBSCRIPTIONS_URL
from fulfillment.registration import handler as registration_handler
from fulfillment.registration import pages
from fulfillment.registration.errors import MarketplaceUnavailableError
from fulfillment.registration.models import RegistrationOutcome, Submission
from fulfillment.registration.settings import Settings
from local.gateway import LambdaContext
from tests.events import TOKEN_FIELD, form_post
from tests.unit.hostile_requests import (
    FORM,
    MARKUP,
    PAGE_BYTES,
    VALID_TOKEN_CHARS,
    assert_no_unescaped_echo,
    assert_security_headers,
    hostile_text,
    input_strings,
    read_fields,
    requests,
)

OFFER_TYPE_FIELD = "x-amzn-marketplace-offer-type"
MAX_TOKEN_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024
MAX_FORM_FIELDS = 32
REGISTRATION_URL = "https://app.example.com/signup?source=aws"
TRIAL_URL = "https://app.example.com/trial"
SESSION_ID = "s3ss10n_1d-0123456789abcdefghijkl"
# Escaping makes a character at most 5 ("&#34;"); the retry page echoes one token.
RETRY_PAGE_BYTES = PAGE_BYTES + 5 * MAX_TOKEN_BYTES


def well_formed(token: str) -> bool:
    """The token rules, as the README states them: non-blank, no whitespace, printable
    ASCII, at most 16 KiB."""
    return 0 < len(token) <= MAX_TOKEN_BYTES and all(c in VALID_TOKEN_CHARS for c in token)


def _bucket(token: str) -> int:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()[0] % 4


def unavailable_for(token: str) -> bool:
    """A quarter of the tokens meet a Marketplace outage (the retry page echoes them)."""
    return _bucket(token) == 0


# A quarter of the registrations are deferred (writes parked on the recovery queue): a page
# with a link to the hand-off instead of a redirect.
def deferred_for(token: str) -> bool:
    return _bucket(token) == 1


@dataclass
class FakeRegistrar:
    settings: Settings
    calls: list[str] = field(default_factory=list)
    raised: bool = False

    def registration_for(
        self, submission: Submission, request_id: str, context: LambdaContext
    ) -> RegistrationOutcome:
        token = submission.token
        self.calls.append(token)
        if unavailable_for(token):
            self.raised = True
            raise MarketplaceUnavailableError("ThrottlingException")
        extra = {"deferred": True} if deferred_for(token) else {}
        return RegistrationOutcome(
            **extra,
            session_id=SESSION_ID,
            session_expires_at=2_000_000_000,
            customer_key="LICENSE#l-fuzz",
            customer_ref="0123456789abcdef",
            product_code="prod-fuzz",
            new_customer=True,
            registered_by_request=request_id,
            free_trial=submission.free_trial,
        )


def _settings(registration_url: str | None) -> Settings:
    known: dict[str, Any] = {
        "customers_table_name": "customers",
        "idempotency_table_name": "idempotency",
        "product_codes": frozenset({"prod-fuzz"}),
        "registration_url": registration_url,
        "trial_registration_url": TRIAL_URL,
        "marketplace_region": "us-east-1",
        "session_ttl_seconds": 3600,
    }
    # Settings the handler does not read here (queue URLs and the like) stay None.
    return Settings(**{name: known.get(name) for name in Settings._fields})


CONTEXT = LambdaContext(
    function_name="fulfillment-api",
    memory_limit_in_mb=512,
    timeout_seconds=20,
    log_stream_name="2026/11/26/[$LATEST]fuzz",
)


@pytest.fixture(scope="module")
def template_text() -> str:
    """Every page as it looks without any input: markup in there is the pages' own."""
    submission = Submission(token="T", free_trial=True)
    every_page = {*(entry.page for entry in pages.ERRORS.values()), pages.LANDING, pages.DEFERRED}
    return "".join(
        pages.render(page, reference="r", submission=submission)["body"] for page in every_page
    )


def _invoke(
    event: dict[str, Any], registration_url: str | None
) -> tuple[dict[str, Any], FakeRegistrar]:
    registrar = FakeRegistrar(_settings(registration_url))
    return registration_handler.lambda_handler(event, CONTEXT, registrar=registrar), registrar


# Tokens as Marketplace issues them, tokens that are only just legal or illegal, markup.
tokens = st.one_of(
    st.text(st.sampled_from(string.ascii_letters + string.digits + "+/="), min_size=1, max_size=90),
    st.text(st.sampled_from(sorted(VALID_TOKEN_CHARS)), min_size=1, max_size=40),
    st.sampled_from([m for m in MARKUP if " " not in m]),
    st.sampled_from(["a" * MAX_TOKEN_BYTES, "a" * (MAX_TOKEN_BYTES + 1), " ", "\t", "ab cd"]),
    hostile_text,
)
field_names = st.one_of(
    st.sampled_from([TOKEN_FIELD, TOKEN_FIELD, TOKEN_FIELD, OFFER_TYPE_FIELD, "registration"]),
    hostile_text,
)
field_values = st.one_of(tokens, st.just("free-trial"))
registration_urls = st.sampled_from([None, REGISTRATION_URL])


def _check_location(location: str, registration_url: str | None) -> None:
    """Only a configured target, or this origin's own sign-up page; never a way off-site."""
    assert not any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in location), location
    if location.startswith((REGISTRATION_URL.split("?")[0] + "?", TRIAL_URL + "?")):
        assert registration_url is not None or location.startswith(TRIAL_URL)
    else:
        assert registration_url is None, location
        parts = urlsplit(location)
        assert not parts.scheme and not parts.netloc, location
        assert location.startswith("/") and location[1:2] not in ("/", "\\"), location
        assert "\\" not in location and parts.path.endswith("/signup"), location
    assert parse_qs(urlsplit(location).query)["registration"] == [SESSION_ID]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=requests(field_names, field_values), registration_url=registration_urls)
@example(event=form_post('"><script>alert(1)</script>'), registration_url=None)
@example(event=form_post("AbC+dEf/GhI+jKl/MnO=="), registration_url=REGISTRATION_URL)
def test_any_request_gets_a_safe_answer_and_only_well_formed_tokens_are_registered(
    template_text: str,
    event: dict[str, Any],
    registration_url: str | None,
) -> None:
    # Given what an independent reader makes of the request
    reading = read_fields(event, TOKEN_FIELD, MAX_BODY_BYTES, MAX_FORM_FIELDS)
    values = reading.fields.get(TOKEN_FIELD, [])

    # When the handler answers it
    response, registrar = _invoke(event, registration_url)

    # Then: a registration only for one well-formed token the request carried
    status, body = response["statusCode"], response["body"]
    assert len(registrar.calls) <= 1
    for token in registrar.calls:
        assert well_formed(token), token
        assert not reading.rejected
        if reading.certain:
            assert set(values) == {token}, (values, token)
    one_value = len(set(values)) == 1
    if reading.certain and not reading.rejected and one_value and well_formed(values[0]):
        assert registrar.calls == values[:1]
    # no 5xx but the outage this test injects, which gets the retry page
    assert status < 500 or (status == 503 and registrar.raised), (status, body[:300])
    assert status in (200, 202, 303, 400, 413, 503), status
    if reading.rejected:
        assert status in (400, 413) and not registrar.calls
    assert_security_headers(response)
    if status == 303:
        assert body == ""
        _check_location(response["headers"]["Location"], registration_url)
        return
    assert response["headers"]["Content-Type"] == "text/html; charset=utf-8"
    # a bounded body, and nothing the client sent echoed raw
    page = assert_no_unescaped_echo(body, input_strings(event), template_text)
    for href in page.hrefs:
        if href != MARKETPLACE_SUBSCRIPTIONS_URL:
            assert status == 202 and registrar.calls and deferred_for(registrar.calls[0]), href
            _check_location(href, registration_url)
    if registrar.raised:
        assert len(body.encode()) < RETRY_PAGE_BYTES
        assert page.inputs[TOKEN_FIELD] == registrar.calls  # the retry re-posts the token
    else:
        assert len(body.encode()) < PAGE_BYTES, len(body.encode())
        assert TOKEN_FIELD not in page.inputs


@settings(max_examples=100, deadline=None)
@given(
    token=st.text(st.sampled_from(sorted(VALID_TOKEN_CHARS)), min_size=1, max_size=60),
    context_path=hostile_text,
    path=st.one_of(st.sampled_from(["/", "/prod/", ""]), hostile_text),
    host=hostile_text,
    query=st.dictionaries(hostile_text, hostile_text, max_size=3),
)
@example(token="t0k3n", context_path="//evil.example/", path="/", host="evil.example", query={})
@example(token="t0k3n", context_path="/\\evil.example/", path="/", host="x", query={})
@example(token="t0k3n", context_path="/\t/evil.example/", path="/", host="x", query={})
@example(token="t0k3n", context_path="https://evil.example/", path="/", host="x", query={})
def test_redirects_go_only_to_configured_targets_or_this_origin(
    token: str,
    context_path: str,
    path: str,
    host: str,
    query: dict[str, str],
) -> None:
    for registration_url in (None, REGISTRATION_URL):
        # Given a registration that succeeds, with the request's path, host and query
        # chosen by the client
        event = form_post(token, free_trial=registration_url is not None)
        event["requestContext"]["path"] = context_path
        event["path"] = path
        event["headers"].update({"Host": host, "X-Forwarded-Host": host})
        event["queryStringParameters"] = query or None
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} or None
        if TOKEN_FIELD in query:
            continue  # a second token value: covered above

        # When
        response, registrar = _invoke(event, registration_url)

        # Then the redirect goes where configuration says, whatever the request carried
        if registrar.raised or deferred_for(token):
            assert response["statusCode"] in (202, 503)
            continue
        assert response["statusCode"] == 303, response["body"][:300]
        location = response["headers"]["Location"]
        _check_location(location, registration_url)
        if registration_url is not None:
            assert location.startswith(TRIAL_URL + "?")  # the free-trial marker was posted


# Regressions the fuzzing found: each was a 500 (or an off-site redirect) before.
@pytest.mark.parametrize(
    "charset", ["rot13", "base64", "zlib", "undefined", "utf-16", "cp037", "no-such"]
)
def test_a_charset_that_reads_no_ascii_is_taken_as_utf8(charset: str) -> None:
    event = form_post("AbC+dEf/GhI=", content_type=f"{FORM}; charset={charset}")

    response, registrar = _invoke(event, REGISTRATION_URL)

    assert registrar.calls == ["AbC+dEf/GhI="]
    assert response["statusCode"] in (303, 202, 503)


@pytest.mark.parametrize(
    ("body", "query"),
    [
        (f"{TOKEN_FIELD}=\ud800", None),  # a lone surrogate in the body's JSON
        (None, {TOKEN_FIELD: ["abc\ud800"]}),  # ... or in the query string's
    ],
)
def test_a_lone_surrogate_is_a_malformed_request(
    body: str | None, query: dict[str, list[str]] | None
) -> None:
    event = form_post("x")
    event["body"] = body
    event["multiValueQueryStringParameters"] = query
    event["queryStringParameters"] = {k: v[-1] for k, v in (query or {}).items()} or None

    response, registrar = _invoke(event, REGISTRATION_URL)

    assert response["statusCode"] == 400 and registrar.calls == []


@pytest.mark.parametrize("context_path", ["//evil.example/", "/\\evil.example/", "/\t/x/"])
def test_the_request_path_cannot_make_the_signup_redirect_leave_this_origin(
    context_path: str,
) -> None:
    event = form_post("t0k3n-1")  # a registration that succeeds (see _bucket)
    event["requestContext"]["path"] = context_path

    response, _ = _invoke(event, None)

    assert response["headers"]["Location"].startswith("/signup?registration=")


def test_an_unexpected_failure_is_500_with_the_request_id_and_no_detail() -> None:
    # Given a registrar that fails in a way no error table foresees
    class Exploding(FakeRegistrar):
        def registration_for(
            self, submission: Submission, request_id: str, context: LambdaContext
        ) -> RegistrationOutcome:
            raise RuntimeError("internal detail /var/task/fulfillment")

    event = form_post("t0k3n-1", request_id="req-boom-1")

    # When a buyer posts a token
    response = registration_handler.lambda_handler(
        event, CONTEXT, registrar=Exploding(_settings(REGISTRATION_URL))
    )

    # Then the 500 page with the reference, and nothing of the failure
    assert response["statusCode"] == 500
    assert "req-boom-1" in response["body"]
    assert "internal detail" not in response["body"] and "Traceback" not in response["body"]
