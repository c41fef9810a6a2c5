"""The sign-up page's pages: the form, its confirmation, and its one table from error to answer."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from markupsafe import Markup

from fulfillment.contract import REASON_DIMENSION, MetricName, SignupRejectionReason
from fulfillment.core import pages
from fulfillment.core.answers import Count, Detail, Log
from fulfillment.core.errors import (
    DeadlineExceededError,
    OversizedFormError,
    StorageUnavailableError,
    UnreadableFormError,
)
from fulfillment.core.pages import BUSY, BY_CLASS_NAME, PARAGRAPH, ErrorPage, Page
from fulfillment.customers.errors import (
    MalformedRegistrationIdError,
    RegistrationPendingError,
    SignupAlreadyCompletedError,
    SignupSessionUnavailableError,
    UnknownSignupSessionError,
)
from fulfillment.signup.errors import CsrfTokenError

if TYPE_CHECKING:
    from fulfillment.signup.contacts import FieldRule

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
# A link from the 202 page whose registration is not recorded yet: the browser reloads it
# (the Refresh header, no script) until the recovery processor has stored it.
_STILL_FINISHING = Page(
    503,
    "We are still setting up your account",
    (
        "We received your subscription and are finishing setting up your account. This page "
        "reloads by itself in a few seconds and then shows the sign-up form.",
        "If it does not, wait a moment and choose \u201cTry again\u201d.",
    ),
    resubmit=True,
    retry_after_seconds=5,
    refresh_seconds=5,
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

# How errors are reported: a refusal is counted by its reason; never with contact details.


def _refused(page: Page, reason: SignupRejectionReason) -> ErrorPage:
    """A request turned away: the page, "sign-up refused", and SignupRejected by ``reason``."""
    return ErrorPage(
        page,
        Log(logging.WARNING, "sign-up refused", fixed=(("reason", str(reason)),)),
        (Count(MetricName.SIGNUP_REJECTED, REASON_DIMENSION, str(reason)),),
    )


# The sign-up page's one table from error to answer: the page, the log line and the metrics.
# Looked up along the exception's class hierarchy (answer_for); anything not in it gets the
# 500 page and is logged with its traceback. (Invalid input is no error: the handler
# re-renders the form and counts SignupRejected InvalidInput itself.)
ERRORS: dict[type[Exception], ErrorPage] = {
    MalformedRegistrationIdError: _refused(
        Page(
            400,
            "This sign-up link is not valid",
            (
                "The link you followed is incomplete or was changed on the way.",
                "Open your AWS Marketplace subscriptions and choose "
                "\u201cSet up your account\u201d again.",
            ),
            marketplace_link=True,
        ),
        SignupRejectionReason.MALFORMED_REGISTRATION,
    ),
    # Unknown and expired alike: both mean "start again", and neither says which ids exist.
    UnknownSignupSessionError: _refused(
        _SIGNUP_LINK_GONE, SignupRejectionReason.UNKNOWN_REGISTRATION
    ),
    SignupSessionUnavailableError: _refused(
        _SIGNUP_LINK_GONE, SignupRejectionReason.EXPIRED_REGISTRATION
    ),
    # Not refused, not counted as a rejection: the buyer is early, nothing is wrong with them.
    RegistrationPendingError: ErrorPage(
        _STILL_FINISHING, Log(logging.INFO, "sign-up waits for its registration to be recorded")
    ),
    SignupAlreadyCompletedError: _refused(
        Page(
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
        SignupRejectionReason.ALREADY_COMPLETED,
    ),
    CsrfTokenError: _refused(
        Page(
            403,
            "We could not accept this form",
            (
                "For your security, the form must be sent from the sign-up page it came from. "
                "Nothing was saved.",
                "Open the sign-up link again from AWS Marketplace and fill in the form there.",
            ),
            marketplace_link=True,
        ),
        SignupRejectionReason.CSRF_MISMATCH,
    ),
    UnreadableFormError: _refused(_FORM_UNREADABLE, SignupRejectionReason.UNREADABLE_FORM),
    OversizedFormError: _refused(
        Page(413, _FORM_UNREADABLE.title, _FORM_UNREADABLE.paragraphs, True),
        SignupRejectionReason.UNREADABLE_FORM,
    ),
    StorageUnavailableError: ErrorPage(
        BUSY, Log(logging.ERROR, "DynamoDB unavailable", details=(Detail.ERROR,))
    ),
    DeadlineExceededError: ErrorPage(BUSY, BY_CLASS_NAME),
    **pages.SHARED_ERRORS,
}


def answer_for(error: BaseException) -> ErrorPage:
    """The table's entry for ``error``; anything unforeseen gets the 500 page."""
    return pages.answer_for(error, ERRORS)


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
        PARAGRAPH.format(
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
    return pages.html(status, pages.document(title, lines), retry_after_seconds)


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
        lines.append(PARAGRAPH.format(notice))
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
