"""The pages a buyer sees, and the one table that maps each error to its status and page.

Jinja2 (auto-escaping on) is imported on first render only: the successful registration is
a body-less 303, so the cold path of a registration never pays for the template engine.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fulfillment import responses
from fulfillment.errors import (
    ConfigurationError,
    ExpiredTokenError,
    FulfillmentError,
    InvalidTokenError,
    MalformedTokenError,
    MarketplaceDisabledError,
    MarketplaceUnavailableError,
    MissingTokenError,
    OversizedRequestError,
    RegistrationInProgressError,
    StorageUnavailableError,
    UnknownProductError,
)
from fulfillment.models import Submission

if TYPE_CHECKING:
    from jinja2 import Template

MARKETPLACE_SUBSCRIPTIONS_URL = "https://console.aws.amazon.com/marketplace/home#/subscriptions"

CSS = (
    "body{font:16px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;"
    "background:#f2f3f3;color:#16191f}"
    "main{max-width:36rem;margin:2rem auto;padding:1.5rem;background:#fff;border-radius:8px}"
    "h1{font-size:1.5rem;margin-top:0}"
    "button,.button{display:inline-block;font:inherit;padding:.6rem 1.2rem;border:0;"
    "border-radius:4px;background:#0972d3;color:#fff;text-decoration:none;cursor:pointer}"
    "button:focus,.button:focus{outline:3px solid #033160;outline-offset:2px}"
    ".reference{font-size:.875rem;color:#5f6b7a}"
)
# The only thing a page may load is its own inline style, pinned by hash.
PAGE_CSP = (
    "default-src 'none'; "
    f"style-src 'sha256-{base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()}'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@dataclass(frozen=True, slots=True)
class Page:
    status: int
    title: str
    paragraphs: tuple[str, ...]
    marketplace_link: bool = False
    resubmit: bool = False
    retry_after_seconds: int | None = None
    show_reference: bool = False


LANDING = Page(
    200,
    "AWS Marketplace account set-up",
    (
        "This address receives buyers from AWS Marketplace after they subscribe to this product.",
        "To set up your account, open your AWS Marketplace subscriptions and choose "
        "\u201cSet up your account\u201d next to this product.",
    ),
    marketplace_link=True,
)
_START_AGAIN = Page(
    400,
    "Please start again from AWS Marketplace",
    (
        "We could not read the registration that AWS Marketplace should have sent with your "
        "browser.",
        "Start again from AWS Marketplace: open your subscriptions and choose "
        "\u201cSet up your account\u201d.",
    ),
    marketplace_link=True,
)
_UNEXPECTED = Page(
    500,
    "Something went wrong",
    (
        "We could not finish setting up your account. Nothing is lost: your subscription is "
        "safe in AWS Marketplace.",
        "Please try again in a few minutes from your AWS Marketplace subscriptions.",
    ),
    marketplace_link=True,
    show_reference=True,
)

# The one place where errors meet HTTP. Looked up along the exception's class hierarchy.
ERROR_PAGES: dict[type[FulfillmentError], Page] = {
    MissingTokenError: _START_AGAIN,
    MalformedTokenError: _START_AGAIN,
    OversizedRequestError: Page(
        413, _START_AGAIN.title, _START_AGAIN.paragraphs, marketplace_link=True
    ),
    InvalidTokenError: Page(
        400,
        "This registration link is not valid",
        (
            "AWS Marketplace did not recognise the registration your browser sent.",
            "Start again from AWS Marketplace: open your subscriptions and choose "
            "\u201cSet up your account\u201d.",
        ),
        marketplace_link=True,
    ),
    ExpiredTokenError: Page(
        400,
        "This registration has expired",
        (
            "Registrations from AWS Marketplace are valid for a limited time.",
            "Please return to AWS Marketplace and choose \u201cSet up your account\u201d again.",
        ),
        marketplace_link=True,
    ),
    UnknownProductError: Page(
        403,
        "This sign-up page is for a different product",
        (
            "The subscription you came from is not one this page sets up.",
            "Open your AWS Marketplace subscriptions and choose \u201cSet up your account\u201d "
            "next to the product you want to use.",
        ),
        marketplace_link=True,
    ),
    MarketplaceUnavailableError: Page(
        503,
        "AWS Marketplace is busy, please try again",
        (
            "We could not confirm your subscription with AWS Marketplace just now.",
            "Wait a few seconds and choose \u201cTry again\u201d.",
        ),
        resubmit=True,
        retry_after_seconds=5,
    ),
    StorageUnavailableError: Page(
        503,
        "We could not finish setting up your account",
        (
            "Our systems are busy. Your subscription is safe, and nothing was half-done.",
            "Wait a few seconds and choose \u201cTry again\u201d.",
        ),
        resubmit=True,
        retry_after_seconds=5,
        show_reference=True,
    ),
    RegistrationInProgressError: Page(
        409,
        "Your account is still being set up",
        (
            "We are already setting up your account from an earlier click.",
            "Wait a moment and choose \u201cTry again\u201d to continue.",
        ),
        resubmit=True,
        retry_after_seconds=2,
    ),
    MarketplaceDisabledError: Page(
        503,
        "Sign-up is temporarily unavailable",
        (
            "The seller's sign-up service cannot reach AWS Marketplace right now.",
            "Please try again later from your AWS Marketplace subscriptions.",
        ),
        marketplace_link=True,
        retry_after_seconds=300,
        show_reference=True,
    ),
    ConfigurationError: _UNEXPECTED,
    FulfillmentError: _UNEXPECTED,
}


def page_for(error: BaseException) -> Page:
    """The page that answers ``error``; anything unforeseen gets the 500 page."""
    for cls in type(error).__mro__:
        page = ERROR_PAGES.get(cls)
        if page is not None:
            return page
    return _UNEXPECTED


def render(
    page: Page, *, reference: str = "", submission: Submission | None = None
) -> dict[str, Any]:
    """The proxy response for ``page``; ``submission`` fills the re-submit form where it has one."""
    body = _template().render(
        title=page.title,
        paragraphs=page.paragraphs,
        marketplace_link=page.marketplace_link,
        marketplace_url=MARKETPLACE_SUBSCRIPTIONS_URL,
        resubmit=submission if page.resubmit else None,
        reference=reference if page.show_reference else "",
        css=CSS,
    )
    extra = {}
    if page.retry_after_seconds is not None:
        extra["Retry-After"] = str(page.retry_after_seconds)
    return responses.html(page.status, body, PAGE_CSP, extra)


@cache
def _template() -> Template:
    from jinja2 import Environment, FileSystemLoader

    environment = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template("page.html")
