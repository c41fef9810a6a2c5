"""Error pages: one status per error, escaped output, security headers on everything."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from fulfillment.core import responses
from fulfillment.core.errors import ConfigurationError, FulfillmentError, StorageUnavailableError
from fulfillment.core.pages import MARKETPLACE_SUBSCRIPTIONS_URL
from fulfillment.registration import pages
from fulfillment.registration.errors import (
    ExpiredTokenError,
    InvalidTokenError,
    MalformedTokenError,
    MarketplaceDisabledError,
    MarketplaceError,
    MarketplaceUnavailableError,
    MissingTokenError,
    OversizedRequestError,
    RegistrationInProgressError,
    UnknownProductError,
)
from fulfillment.registration.models import Submission
from fulfillment.signup import pages as signup_pages
from fulfillment.signup.contacts import FieldRule

SECURITY_HEADERS = {
    "Content-Security-Policy",
    "X-Content-Type-Options",
    "Referrer-Policy",
    "Cache-Control",
    "Strict-Transport-Security",
}


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (MissingTokenError("x"), 400),
        (MalformedTokenError("x"), 400),
        (OversizedRequestError("x"), 413),
        (InvalidTokenError("InvalidTokenException"), 400),
        (ExpiredTokenError("ExpiredTokenException"), 400),
        (UnknownProductError("prod-x"), 403),
        (MarketplaceUnavailableError("ThrottlingException"), 503),
        (MarketplaceDisabledError("DisabledApiException"), 503),
        (StorageUnavailableError("x"), 503),
        (RegistrationInProgressError("x"), 409),
        (ConfigurationError("PRODUCT_CODES", "is not set"), 500),
        (MarketplaceError("OtherError"), 500),
        (FulfillmentError("x"), 500),
        (KeyError("boom"), 500),
    ],
)
def test_each_error_has_its_status_and_the_security_headers(error: Exception, status: int) -> None:
    response = pages.render(pages.page_for(error), reference="req-123")

    assert response["statusCode"] == status
    assert response["headers"].keys() >= SECURITY_HEADERS
    assert response["headers"]["Content-Type"] == "text/html; charset=utf-8"


def test_expired_page_tells_the_buyer_what_to_do() -> None:
    body = pages.render(pages.page_for(ExpiredTokenError("ExpiredTokenException")))["body"]

    assert "return to AWS Marketplace and choose" in body
    assert "Set up your account" in body
    assert MARKETPLACE_SUBSCRIPTIONS_URL in body


def test_unexpected_error_shows_the_reference_and_no_detail() -> None:
    body = pages.render(pages.page_for(KeyError("secret detail")), reference="req-123")["body"]

    assert "req-123" in body
    assert "secret detail" not in body
    assert "Traceback" not in body


def test_retry_page_resubmits_the_token_as_an_escaped_form_post() -> None:
    token = '"><script>alert(1)</script>'
    page = pages.page_for(MarketplaceUnavailableError("ThrottlingException"))

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
    page = pages.page_for(InvalidTokenError("InvalidTokenException"))

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
