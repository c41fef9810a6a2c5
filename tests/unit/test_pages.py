"""The fulfillment URL's error table (status, page, log line, metrics per error), escaped
output, security headers on everything."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from fulfillment import contract
from fulfillment.core import responses
from fulfillment.core.errors import (
    ConfigurationError,
    DeadlineExceededError,
    FulfillmentError,
    StorageUnavailableError,
)
from fulfillment.registration import pages
from fulfillment.registration.errors import (
    ExpiredTokenError,
    IncompleteCustomerError,
    InvalidTokenError,
    MalformedTokenError,
    MarketplaceDisabledError,
    MarketplaceError,
    MarketplaceUnavailableError,
    MissingTokenError,
    OversizedRequestError,
    RecoveryUnavailableError,
    RegistrationInProgressError,
    UnknownProductError,
)
from fulfillment.registration.models import Submission
from fulfillment.signup import pages as signup_pages
from fulfillment.signup.contacts import FieldRule
from tests.unit.reports import raise_and_report, reported

SECURITY_HEADERS = {
    "Content-Security-Policy",
    "X-Content-Type-Options",
    "Referrer-Policy",
    "Cache-Control",
    "Strict-Transport-Security",
}


REJECTED = "registration rejected"
RESOLVE_FAILED = "ResolveCustomer failed"
DISABLED = "configuration fault: ResolveCustomer is disabled in the configured region"
NOT_PARKED = "registration neither stored nor parked on the recovery queue; the buyer may retry"


def _rejected(reason: str) -> tuple[str, dict[str, str]]:
    return ("RegistrationRejected", {"Reason": reason})


def _marketplace(code: str) -> tuple[str, dict[str, str]]:
    return ("MarketplaceError", {"ErrorCode": code})


# The fulfillment URL's table, row by row: status, then the log line (level, message, its
# extra keys) and the metrics (name, dimensions) each error gets.
ROWS = [
    (MissingTokenError("x"), 400, "WARNING", REJECTED, {"reason": "MissingToken"},
     [_rejected("MissingToken")]),
    (MalformedTokenError("x"), 400, "WARNING", REJECTED, {"reason": "MalformedToken"},
     [_rejected("MalformedToken")]),
    (OversizedRequestError("x"), 413, "WARNING", REJECTED, {"reason": "MalformedToken"},
     [_rejected("MalformedToken")]),
    (InvalidTokenError("InvalidTokenException"), 400, "WARNING", REJECTED,
     {"reason": "InvalidToken"},
     [_marketplace("InvalidTokenException"), _rejected("InvalidToken")]),
    (ExpiredTokenError("ExpiredTokenException"), 400, "WARNING", REJECTED,
     {"reason": "ExpiredToken"},
     [_marketplace("ExpiredTokenException"), _rejected("ExpiredToken")]),
    (UnknownProductError("prod-x"), 403, "WARNING", REJECTED, {"reason": "UnknownProduct"},
     [_rejected("UnknownProduct")]),
    (MarketplaceUnavailableError("ThrottlingException"), 503, "WARNING", RESOLVE_FAILED,
     {"error_code": "ThrottlingException"}, [_marketplace("ThrottlingException")]),
    (MarketplaceDisabledError("DisabledApiException"), 503, "ERROR", DISABLED,
     {"variable": "MARKETPLACE_REGION", "error_code": "DisabledApiException"},
     [_marketplace("DisabledApiException")]),
    (IncompleteCustomerError("MissingIdentity"), 500, "WARNING", RESOLVE_FAILED,
     {"error_code": "MissingIdentity"}, [_marketplace("MissingIdentity")]),
    (IncompleteCustomerError("MissingAccountId"), 500, "WARNING", RESOLVE_FAILED,
     {"error_code": "MissingAccountId"}, [_marketplace("MissingAccountId")]),
    (MarketplaceError("OtherError"), 500, "WARNING", RESOLVE_FAILED,
     {"error_code": "OtherError"}, [_marketplace("OtherError")]),
    (RecoveryUnavailableError("ServiceUnavailable"), 503, "ERROR", NOT_PARKED,
     {"error": "ServiceUnavailable"}, []),
    (StorageUnavailableError("ProvisionedThroughputExceededException"), 503, "ERROR",
     "DynamoDB unavailable", {"error": "ProvisionedThroughputExceededException"}, []),
    (DeadlineExceededError("x"), 503, "WARNING", "DeadlineExceededError", {}, []),
    (RegistrationInProgressError("x"), 409, "WARNING", "RegistrationInProgressError", {}, []),
    (ConfigurationError("PRODUCT_CODES", "is not set"), 500, "ERROR",
     "configuration fault: PRODUCT_CODES is not set", {"variable": "PRODUCT_CODES"}, []),
    (FulfillmentError("x"), 500, "WARNING", "FulfillmentError", {}, []),
    (KeyError("boom"), 500, "ERROR", "unexpected error", {}, []),
]  # fmt: skip


@pytest.mark.parametrize(
    ("error", "status", "level", "message", "extra", "metrics"),
    ROWS,
    ids=[type(row[0]).__name__ for row in ROWS],
)
def test_each_error_has_its_status_headers_log_line_and_metrics(
    capsys: pytest.CaptureFixture[str],
    error: Exception,
    status: int,
    level: str,
    message: str,
    extra: dict[str, str],
    metrics: list[tuple[str, dict[str, str]]],
) -> None:
    answer = pages.answer_for(error)

    response = pages.render(answer.page, reference="req-123")
    report = reported(lambda: raise_and_report(error, answer.report), capsys)

    assert response["statusCode"] == status
    assert response["headers"].keys() >= SECURITY_HEADERS
    assert response["headers"]["Content-Type"] == "text/html; charset=utf-8"
    (line,) = report.lines
    assert (line["level"], line["message"], report.fields(line)) == (level, message, extra)
    assert ("exception" in line) == isinstance(error, KeyError)  # only the unforeseen
    assert report.metrics == metrics


def test_unexpected_error_shows_the_reference_and_no_detail() -> None:
    page = pages.answer_for(KeyError("secret detail")).page

    body = pages.render(page, reference="req-123")["body"]

    assert "req-123" in body
    assert "secret detail" not in body
    assert "Traceback" not in body


def test_incomplete_answer_says_nothing_was_stored_and_offers_no_retry() -> None:
    # Resubmitting gets the same answer from ResolveCustomer: a Try again button would loop.
    page = pages.answer_for(IncompleteCustomerError("MissingAccountId")).page

    response = pages.render(page, reference="req-123")

    body = response["body"]
    assert "We could not confirm your subscription" in body
    assert "nothing was stored" in body
    assert "req-123" in body
    assert "Try again" not in body and "Retry-After" not in response["headers"]


def test_retry_page_resubmits_the_token_as_an_escaped_form_post() -> None:
    token = '"><script>alert(1)</script>'
    page = pages.answer_for(MarketplaceUnavailableError("ThrottlingException")).page

    response = pages.render(page, submission=Submission(token=token, free_trial=True))

    body = response["body"]
    assert response["headers"]["Retry-After"] == "5"
    assert "<script>" not in body
    assert 'value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in body
    assert '<form method="post">' in body
    assert 'name="x-amzn-marketplace-offer-type" value="free-trial"' in body
    assert "href" not in body.split("<form", 1)[1].split("</form>", 1)[0]


def test_sign_up_form_escapes_every_value_it_shows() -> None:
    # Given markup in everything the form shows: a seller-configured field's name and label,
    # the buyer's values, the error messages, the notice, the registration and CSRF token
    hostile = '"><script>x</script>'
    rules = (FieldRule("extra" + hostile, "Label" + hostile, False, 50, "email"),)
    name = rules[0].name

    body = signup_pages.render_signup_form(
        rules,
        registration="r" + hostile,
        csrf_token="c" + hostile,
        values={name: "v" + hostile},
        errors={name: "e" + hostile},
        notice="n" + hostile,
    )["body"]

    # Then none of it is markup: only escaped text, in each place it belongs
    assert "<script>" not in body
    escaped = "&#34;&gt;&lt;script&gt;x&lt;/script&gt;"
    for shown in ("Label", "e", "n"):
        assert f">{shown}{escaped}" in body
    for attribute in ("registration", "csrf_token"):
        assert f'name="{attribute}" value="{attribute[0]}{escaped}"' in body
    assert (
        f'<input id="extra{escaped}" name="extra{escaped}" type="email" value="v{escaped}"' in body
    )
    assert f'<a href="#extra{escaped}">e{escaped}</a>' in body
    assert f'aria-describedby="extra{escaped}-error"' in body


def test_pages_without_resubmit_never_echo_the_token() -> None:
    page = pages.answer_for(InvalidTokenError("InvalidTokenException")).page

    body = pages.render(page, submission=Submission(token="SECRET-TOKEN", free_trial=False))["body"]

    assert "SECRET-TOKEN" not in body


def test_inline_style_matches_its_csp_hash_and_nothing_external_loads() -> None:
    response = pages.render(pages.LANDING)
    style = re.search(r"<style>(.*?)</style>", response["body"], re.S)

    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert f"'sha256-{digest}'" in response["headers"]["Content-Security-Policy"]
    assert "default-src 'none'" in response["headers"]["Content-Security-Policy"]
    assert not re.search(r"<(script|img|link|iframe)", response["body"])


def test_redirect_carries_the_security_headers() -> None:
    response = responses.see_other("https://app.example.com/?registration=abc")

    assert response["statusCode"] == 303
    assert response["headers"].keys() >= SECURITY_HEADERS


@pytest.mark.parametrize("page", contract.GATEWAY_PAGES, ids=lambda p: p.response_type)
def test_api_gateways_own_pages_load_nothing_and_escape_the_reference(
    page: contract.GatewayPage,
) -> None:
    body = contract.gateway_page_html(page, '<b>"ref"</b>')
    style = re.search(r"<style>(.*?)</style>", body, re.S)

    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert f"'sha256-{digest}'" in contract.GATEWAY_PAGE_CSP
    assert "default-src 'none'" in contract.GATEWAY_PAGE_CSP
    assert not re.search(r"<(script|img|link|iframe|form)", body)
    assert "&lt;b&gt;&quot;ref&quot;&lt;/b&gt;" in body
    assert f"<h1>{page.title}</h1>" in body
    assert contract.MARKETPLACE_SUBSCRIPTIONS_URL in body
    # API Gateway substitutes only $context variables: nothing else may look like one
    assert "$" not in contract.gateway_page_html(page, "reference")
