"""The page document every buyer page is built on, and the pages both HTML surfaces share.

Pages are composed with MarkupSafe's ``Markup``: every value formatted into one is escaped
unless it is ``Markup`` itself, which only the pages modules' fixed fragments are. A template
engine would cost a sign-up page's cold start ~25 ms (Jinja2: import and compile) for three
short pages with a handful of conditions (docs/decisions.md). Each surface maps its errors to
``ErrorPage`` entries in its own table (registration/pages.py, signup/pages.py).
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Iterable
from typing import Any, NamedTuple

from markupsafe import Markup

from fulfillment.contract import MARKETPLACE_SUBSCRIPTIONS_URL
from fulfillment.core import responses
from fulfillment.core.answers import Count, Detail, Log, lookup, report
from fulfillment.core.errors import ConfigurationError, FulfillmentError

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
    # The browser reloads the page after this many seconds (a `Refresh` header: no script).
    refresh_seconds: int | None = None


class ErrorPage(NamedTuple):
    """One entry of a page surface's error table: the page, and how the error is reported."""

    page: Page
    log: Log
    counts: tuple[Count, ...] = ()

    def report(self, error: BaseException) -> None:
        """Count and log ``error`` once, as this entry says."""
        report(error, self.log, self.counts, stacklevel=2)


UNEXPECTED = Page(
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

BUSY = Page(
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

# What both page surfaces (fulfillment URL, sign-up) log and answer alike: a line naming the
# error's class, a configuration fault, any other FulfillmentError, anything unforeseen.
BY_CLASS_NAME = Log(logging.WARNING, "{type}")
SHARED_ERRORS: dict[type[Exception], ErrorPage] = {
    ConfigurationError: ErrorPage(
        UNEXPECTED,
        Log(logging.ERROR, "configuration fault: {error}", details=(Detail.VARIABLE,)),
    ),
    FulfillmentError: ErrorPage(UNEXPECTED, BY_CLASS_NAME),
}
UNFORESEEN = ErrorPage(UNEXPECTED, Log(logging.ERROR, "unexpected error", traceback=True))


def answer_for(error: BaseException, table: dict[type[Exception], ErrorPage]) -> ErrorPage:
    """``table``'s entry for ``error`` (nearest base class); anything unforeseen gets the 500
    page."""
    return lookup(error, table, UNFORESEEN)


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
PARAGRAPH = Markup("<p>{}</p>\n")
BUTTON_LINK = Markup('<p><a class="button" href="{href}">{text}</a></p>\n')


# CSS is this module's constant (its hash is pinned in PAGE_CSP), never input.
_STYLE = Markup(CSS)  # noqa: S704


def document(title: str, lines: Iterable[Markup]) -> str:
    """The whole page: ``title`` escaped, ``lines`` (each already Markup) inside <main>."""
    return str(_DOCUMENT.format(title=title, css=_STYLE, content=Markup("").join(lines)))


def render(
    page: Page,
    *,
    reference: str = "",
    resubmit_form: Markup | None = None,
    retry_href: str | None = None,
    continue_href: str | None = None,
) -> dict[str, Any]:
    """The proxy response for ``page``; ``resubmit_form`` (a form that sends the same request
    again) stands where the page offers to try again, ``retry_href`` (a same-page link) stands
    in for it where a GET can simply be repeated; ``continue_href`` (from configuration only)
    is a link onwards."""
    lines = [Markup("<h1>{}</h1>\n").format(page.title)]
    lines += [PARAGRAPH.format(paragraph) for paragraph in page.paragraphs]
    if page.resubmit and resubmit_form is not None:
        lines.append(resubmit_form)
    elif page.resubmit and retry_href:
        lines.append(BUTTON_LINK.format(href=retry_href, text="Try again"))
    if continue_href:
        lines.append(BUTTON_LINK.format(href=continue_href, text="Continue"))
    if page.marketplace_link:
        lines.append(
            BUTTON_LINK.format(
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
    return html(
        page.status, document(page.title, lines), page.retry_after_seconds, page.refresh_seconds
    )


def html(
    status: int,
    body: str,
    retry_after_seconds: int | None = None,
    refresh_seconds: int | None = None,
) -> dict[str, Any]:
    """A page's proxy response: its CSP, Retry-After where the page asks to come back, and
    Refresh where the browser is to reload it by itself."""
    extra = {}
    if retry_after_seconds is not None:
        extra["Retry-After"] = str(retry_after_seconds)
    if refresh_seconds is not None:
        extra["Refresh"] = str(refresh_seconds)
    return responses.html(status, body, PAGE_CSP, extra)
