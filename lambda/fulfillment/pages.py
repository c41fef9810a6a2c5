"""The pages a buyer sees, and the one table that maps each error to its status and page.

Pages are composed with MarkupSafe's ``Markup``: every value formatted into one is escaped
unless it is ``Markup`` itself, which only this module's fixed fragments are. A template
engine would cost a sign-up page's cold start ~25 ms (Jinja2: import and compile) for three
short pages with a handful of conditions (docs/decisions.md).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from markupsafe import Markup

from fulfillment import responses
from fulfillment.errors import (
    ConfigurationError,
    CsrfTokenError,
    DeadlineExceededError,
    ExpiredTokenError,
    FulfillmentError,
    InvalidTokenError,
    MalformedRegistrationIdError,
    MalformedTokenError,
    MarketplaceDisabledError,
    MarketplaceUnavailableError,
    MissingTokenError,
    OversizedFormError,
    OversizedRequestError,
    RegistrationInProgressError,
    SignupAlreadyCompletedError,
    SignupSessionUnavailableError,
    StorageUnavailableError,
    UnknownProductError,
    UnreadableFormError,
)
from fulfillment.models import Submission

if TYPE_CHECKING:
    from fulfillment.contacts import FieldRule

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
    "a{color:#0972d3}a:focus{outline:3px solid #033160;outline-offset:2px}"
    "@media (max-width:40rem){body{background:#fff}"
    "main{margin:0;border-radius:0;padding:1.25rem 1rem}}"
    # The sign-up form.
    ".field{margin:0 0 1.25rem}"
    "label{display:block;font-weight:600;margin-bottom:.3rem}"
    "input{box-sizing:border-box;width:100%;font:inherit;padding:.55rem .65rem;"
    "border:2px solid #5f6b7a;border-radius:4px;background:#fff;color:inherit}"
    "input:focus{outline:3px solid #033160;outline-offset:1px}"
    ".invalid input{border-color:#b3261e}"
    ".field-error{margin:0 0 .3rem;color:#b3261e;font-weight:600}"
    ".error-summary{border:3px solid #b3261e;border-radius:4px;padding:1rem;margin-bottom:1.5rem}"
    ".error-summary:focus{outline:3px solid #033160;outline-offset:2px}"
    ".error-summary h2{font-size:1.2rem;margin:0 0 .5rem}"
    ".error-summary ul{margin:0;padding-left:1.2rem}"
    ".error-summary a{color:#b3261e;font-weight:600}"
    ".visually-hidden{position:absolute;width:1px;height:1px;margin:-1px;overflow:hidden;"
    "clip:rect(0 0 0 0);white-space:nowrap;border:0}"
)
# The only thing a page may load is its own inline style, pinned by hash.
PAGE_CSP = (
    "default-src 'none'; "
    f"style-src 'sha256-{base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()}'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class Page(NamedTuple):
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

SIGNUP_TITLE = "Set up your account"
SIGNUP_COMPLETED = Page(
    200,
    "Thank you, your account is set up",
    (
        "We have your details and will contact you about getting started.",
        "You can close this page.",
    ),
)
_SIGNUP_LINK_GONE = Page(
    410,
    "This sign-up link has expired",
    (
        "Sign-up links from AWS Marketplace are valid for a limited time, and this one is no "
        "longer valid.",
        "Return to your AWS Marketplace subscriptions and choose \u201cSet up your account\u201d "
        "again to get a new one.",
    ),
    marketplace_link=True,
)
_FORM_UNREADABLE = Page(
    400,
    "We could not read the form",
    (
        "Your browser sent the sign-up form in a way we could not read. Nothing was saved.",
        "Go back to the form and submit it again, or start again from AWS Marketplace.",
    ),
    marketplace_link=True,
)

_BUSY = Page(
    503,
    "We could not finish setting up your account",
    (
        "Our systems are busy. Your subscription is safe, and nothing was half-done.",
        "Wait a few seconds and choose \u201cTry again\u201d.",
    ),
    resubmit=True,
    retry_after_seconds=5,
    show_reference=True,
)

# A resolved registration whose writes failed and that waits on the recovery queue: honest
# about it, and a Continue link to the sign-up target (the id is not the token).
DEFERRED = Page(
    202,
    "We received your subscription",
    (
        "We received your subscription and are finishing setting up your account.",
        "This usually takes less than a minute. Choose \u201cContinue\u201d to go on; if the "
        "next page is not ready yet, wait a moment and continue again.",
    ),
    retry_after_seconds=30,
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
    StorageUnavailableError: _BUSY,
    DeadlineExceededError: _BUSY,
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
    # The sign-up page (fulfillment.signup).
    MalformedRegistrationIdError: Page(
        400,
        "This sign-up link is not valid",
        (
            "The link you followed is incomplete or was changed on the way.",
            "Open your AWS Marketplace subscriptions and choose \u201cSet up your account\u201d "
            "again.",
        ),
        marketplace_link=True,
    ),
    # Unknown and expired alike: both mean "start again", and neither says which ids exist.
    SignupSessionUnavailableError: _SIGNUP_LINK_GONE,
    SignupAlreadyCompletedError: Page(
        200,
        "Your sign-up is complete",
        (
            "The details for this subscription were already sent. There is nothing more to "
            "do here.",
            "If something needs changing, contact the seller, or start again from your AWS "
            "Marketplace subscriptions.",
        ),
        marketplace_link=True,
    ),
    CsrfTokenError: Page(
        403,
        "We could not accept this form",
        (
            "For your security, the form must be sent from the sign-up page it came from. "
            "Nothing was saved.",
            "Open the sign-up link again from AWS Marketplace and fill in the form there.",
        ),
        marketplace_link=True,
    ),
    UnreadableFormError: _FORM_UNREADABLE,
    OversizedFormError: Page(413, _FORM_UNREADABLE.title, _FORM_UNREADABLE.paragraphs, True),
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


_DOCUMENT = Markup(
    "<!doctype html>\n"
    '<html lang="en">\n'
    "<head>\n"
    '<meta charset="utf-8">\n'
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
    '<meta name="robots" content="noindex">\n'
    "<title>{title}</title>\n"
    "<style>{css}</style>\n"
    "</head>\n"
    "<body>\n"
    "<main>\n"
    "{content}"
    "</main>\n"
    "</body>\n"
    "</html>"
)
_PARAGRAPH = Markup("<p>{}</p>\n")
_BUTTON_LINK = Markup('<p><a class="button" href="{href}">{text}</a></p>\n')


# CSS is this module's constant (its hash is pinned in PAGE_CSP), never input.
_STYLE = Markup(CSS)  # noqa: S704


def _document(title: str, lines: Iterable[Markup]) -> str:
    """The whole page: ``title`` escaped, ``lines`` (each already Markup) inside <main>."""
    return str(_DOCUMENT.format(title=title, css=_STYLE, content=Markup("").join(lines)))


def render(
    page: Page,
    *,
    reference: str = "",
    submission: Submission | None = None,
    retry_href: str | None = None,
    continue_href: str | None = None,
) -> dict[str, Any]:
    """The proxy response for ``page``; ``submission`` fills the re-submit form where it has one,
    ``retry_href`` (a same-page link) stands in for it where a GET can simply be repeated;
    ``continue_href`` (from configuration only) is a link onwards."""
    lines = [Markup("<h1>{}</h1>\n").format(page.title)]
    lines += [_PARAGRAPH.format(paragraph) for paragraph in page.paragraphs]
    if page.resubmit and submission is not None:
        lines.append(_resubmit_form(submission))
    elif page.resubmit and retry_href:
        lines.append(_BUTTON_LINK.format(href=retry_href, text="Try again"))
    if continue_href:
        lines.append(_BUTTON_LINK.format(href=continue_href, text="Continue"))
    if page.marketplace_link:
        lines.append(
            _BUTTON_LINK.format(
                href=MARKETPLACE_SUBSCRIPTIONS_URL, text="Go to your AWS Marketplace subscriptions"
            )
        )
    if page.show_reference and reference:
        lines.append(
            Markup(
                '<p class="reference">If you contact the seller, quote this reference: '
                "<code>{}</code></p>\n"
            ).format(reference)
        )
    extra = {}
    if page.retry_after_seconds is not None:
        extra["Retry-After"] = str(page.retry_after_seconds)
    return responses.html(page.status, _document(page.title, lines), PAGE_CSP, extra)


def _resubmit_form(submission: Submission) -> Markup:
    """Posts the same token again (and the free-trial flag Marketplace sent with it)."""
    free_trial = Markup(
        '<input type="hidden" name="x-amzn-marketplace-offer-type" value="free-trial">'
    )
    return Markup(
        '<form method="post">\n'
        '<input type="hidden" name="x-amzn-marketplace-token" value="{token}">\n'
        '{free_trial}<button type="submit">Try again</button>\n'
        "</form>\n"
    ).format(token=submission.token, free_trial=free_trial if submission.free_trial else "")


class FormField(NamedTuple):
    """One input of the sign-up form as the page shows it."""

    name: str
    label: str
    required: bool
    type: str
    autocomplete: str | None
    inputmode: str | None
    value: str
    error: str | None


# What browsers and password managers may fill in; extra fields get nothing.
_AUTOCOMPLETE = {
    "company": "organization",
    "contact_name": "name",
    "email": "email",
    "phone": "tel",
}
_INPUTMODE = {"email": "email", "tel": "tel"}


def render_signup_form(
    rules: tuple[FieldRule, ...],
    *,
    registration: str,
    csrf_token: str,
    values: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
    status: int = 200,
    notice: str | None = None,
    retry_after_seconds: int | None = None,
) -> dict[str, Any]:
    """The sign-up form, with ``values`` kept and ``errors`` next to their fields."""
    values = values or {}
    errors = errors or {}
    fields = [
        FormField(
            name=rule.name,
            label=rule.label,
            required=rule.required,
            type=rule.kind,
            autocomplete=_AUTOCOMPLETE.get(rule.name),
            inputmode=_INPUTMODE.get(rule.kind),
            value=values.get(rule.name, ""),
            error=errors.get(rule.name),
        )
        for rule in rules
    ]
    lines: list[Markup] = []
    if errors or notice:
        lines.append(_error_summary(fields, notice))
    lines.append(Markup("<h1>{}</h1>\n").format(SIGNUP_TITLE))
    lines.append(
        _PARAGRAPH.format(
            "Tell us who to contact about your subscription. Fields marked (optional) can be "
            "left empty."
        )
    )
    lines.append(
        Markup(
            '<form method="post" novalidate>\n'
            '<input type="hidden" name="registration" value="{registration}">\n'
            '<input type="hidden" name="csrf_token" value="{csrf_token}">\n'
        ).format(registration=registration, csrf_token=csrf_token)
    )
    lines += [_field(field) for field in fields]
    lines.append(Markup('<button type="submit">Complete sign-up</button>\n</form>\n'))
    # Screen readers announce the title first: it says there is a problem before anything.
    title = f"Error: {SIGNUP_TITLE}" if errors else SIGNUP_TITLE
    extra = {}
    if retry_after_seconds is not None:
        extra["Retry-After"] = str(retry_after_seconds)
    return responses.html(status, _document(title, lines), PAGE_CSP, extra)


def _error_summary(fields: list[FormField], notice: str | None) -> Markup:
    """The box the page opens with (focused on load): the notice, then a link to each field
    in error."""
    lines = [
        Markup(
            '<div class="error-summary" id="error-summary" role="alert" tabindex="-1" '
            'autofocus aria-labelledby="error-summary-title">\n'
            '<h2 id="error-summary-title">There is a problem</h2>\n'
        )
    ]
    if notice:
        lines.append(_PARAGRAPH.format(notice))
    in_error = [field for field in fields if field.error]
    if in_error:
        lines.append(Markup("<ul>\n"))
        lines += [
            Markup('<li><a href="#{name}">{error}</a></li>\n').format(
                name=field.name, error=field.error
            )
            for field in in_error
        ]
        lines.append(Markup("</ul>\n"))
    lines.append(Markup("</div>\n"))
    return Markup("").join(lines)


def _field(field: FormField) -> Markup:
    """One labelled input, its error (if any) between label and input, tied by aria."""
    attributes: list[Markup] = []
    if field.autocomplete:
        attributes.append(Markup(' autocomplete="{}"').format(field.autocomplete))
    if field.inputmode:
        attributes.append(Markup(' inputmode="{}"').format(field.inputmode))
    if field.type == "email":
        attributes.append(Markup(' spellcheck="false" autocapitalize="none"'))
    if field.required:
        attributes.append(Markup(" required"))
    error = Markup("")
    if field.error:
        attributes.append(
            Markup(' aria-invalid="true" aria-describedby="{}-error"').format(field.name)
        )
        error = Markup(
            '<p class="field-error" id="{name}-error"><span class="visually-hidden">Error: '
            "</span>{error}</p>\n"
        ).format(name=field.name, error=field.error)
    return Markup(
        '<div class="field{invalid}">\n'
        '<label for="{name}">{label}{optional}</label>\n'
        "{error}"
        '<input id="{name}" name="{name}" type="{type}" value="{value}"{attributes}>\n'
        "</div>\n"
    ).format(
        invalid=Markup(" invalid") if field.error else "",
        name=field.name,
        label=field.label,
        optional="" if field.required else " (optional)",
        error=error,
        type=field.type,
        value=field.value,
        attributes=Markup("").join(attributes),
    )
