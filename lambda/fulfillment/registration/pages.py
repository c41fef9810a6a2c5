"""The fulfillment URL's pages, and its one table from error to answer."""

from __future__ import annotations

import logging
from typing import Any

from markupsafe import Markup

from fulfillment.contract import (
    ERROR_CODE_DIMENSION,
    MARKETPLACE_REGION,
    REASON_DIMENSION,
    MetricName,
)
from fulfillment.core import pages
from fulfillment.core.answers import Count, Detail, Log
from fulfillment.core.errors import (
    DeadlineExceededError,
    StorageUnavailableError,
)
from fulfillment.core.pages import BUSY, BY_CLASS_NAME, UNEXPECTED, ErrorPage, Page
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
    RejectedSubmissionError,
    UnknownProductError,
)
from fulfillment.registration.models import Submission

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
START_AGAIN = Page(
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

# How errors are reported: counted by a bounded dimension, logged without the token.
_REJECTED = Log(logging.WARNING, "registration rejected", details=(Detail.REASON,))
_COUNT_REJECTED = Count(MetricName.REGISTRATION_REJECTED, REASON_DIMENSION, Detail.REASON)
_COUNT_MARKETPLACE = Count(MetricName.MARKETPLACE_ERROR, ERROR_CODE_DIMENSION, Detail.ERROR_CODE)
_RESOLVE_FAILED = Log(logging.WARNING, "ResolveCustomer failed", details=(Detail.ERROR_CODE,))


def _rejected(page: Page) -> ErrorPage:
    return ErrorPage(page, _REJECTED, (_COUNT_REJECTED,))


# The fulfillment URL's one table from error to answer: the page, the log line and the
# metrics. Looked up along the exception's class hierarchy (answer_for); anything not in it
# gets the 500 page and is logged with its traceback.
ERRORS: dict[type[Exception], ErrorPage] = {
    MissingTokenError: _rejected(START_AGAIN),
    MalformedTokenError: _rejected(START_AGAIN),
    OversizedRequestError: _rejected(
        Page(413, START_AGAIN.title, START_AGAIN.paragraphs, marketplace_link=True)
    ),
    InvalidTokenError: ErrorPage(
        Page(
            400,
            "This registration link is not valid",
            (
                "AWS Marketplace did not recognise the registration your browser sent.",
                "Start again from AWS Marketplace: open your subscriptions and choose "
                "\u201cSet up your account\u201d.",
            ),
            marketplace_link=True,
        ),
        _REJECTED,
        (_COUNT_MARKETPLACE, _COUNT_REJECTED),
    ),
    ExpiredTokenError: ErrorPage(
        Page(
            400,
            "This registration has expired",
            (
                "Registrations from AWS Marketplace are valid for a limited time.",
                "Please return to AWS Marketplace and choose \u201cSet up your account\u201d "
                "again.",
            ),
            marketplace_link=True,
        ),
        _REJECTED,
        (_COUNT_MARKETPLACE, _COUNT_REJECTED),
    ),
    UnknownProductError: _rejected(
        Page(
            403,
            "This sign-up page is for a different product",
            (
                "The subscription you came from is not one this page sets up.",
                "Open your AWS Marketplace subscriptions and choose "
                "\u201cSet up your account\u201d next to the product you want to use.",
            ),
            marketplace_link=True,
        )
    ),
    # A rejection no page foresees is still counted as one.
    RejectedSubmissionError: _rejected(UNEXPECTED),
    MarketplaceUnavailableError: ErrorPage(
        Page(
            503,
            "AWS Marketplace is busy, please try again",
            (
                "We could not confirm your subscription with AWS Marketplace just now.",
                "Wait a few seconds and choose \u201cTry again\u201d.",
            ),
            resubmit=True,
            retry_after_seconds=5,
        ),
        _RESOLVE_FAILED,
        (_COUNT_MARKETPLACE,),
    ),
    MarketplaceDisabledError: ErrorPage(
        Page(
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
        Log(
            logging.ERROR,
            "configuration fault: ResolveCustomer is disabled in the configured region",
            fixed=(("variable", MARKETPLACE_REGION),),
            details=(Detail.ERROR_CODE,),
        ),
        (_COUNT_MARKETPLACE,),
    ),
    # ResolveCustomer answered without an identity or account id: nothing can be stored, and
    # trying again gets the same answer; the seller has to look (the metric feeds the alarm).
    IncompleteCustomerError: ErrorPage(
        Page(
            500,
            "We could not confirm your subscription",
            (
                "AWS Marketplace did not tell us everything we need to set up your account, "
                "so nothing was stored. Your subscription is safe in AWS Marketplace.",
                "Please contact the seller and quote the reference below.",
            ),
            marketplace_link=True,
            show_reference=True,
        ),
        _RESOLVE_FAILED,
        (_COUNT_MARKETPLACE,),
    ),
    # Any code no entry above names.
    MarketplaceError: ErrorPage(UNEXPECTED, _RESOLVE_FAILED, (_COUNT_MARKETPLACE,)),
    RecoveryUnavailableError: ErrorPage(
        BUSY,
        Log(
            logging.ERROR,
            "registration neither stored nor parked on the recovery queue; the buyer may retry",
            details=(Detail.ERROR,),
        ),
    ),
    StorageUnavailableError: ErrorPage(
        BUSY, Log(logging.ERROR, "DynamoDB unavailable", details=(Detail.ERROR,))
    ),
    DeadlineExceededError: ErrorPage(BUSY, BY_CLASS_NAME),
    RegistrationInProgressError: ErrorPage(
        Page(
            409,
            "Your account is still being set up",
            (
                "We are already setting up your account from an earlier click.",
                "Wait a moment and choose \u201cTry again\u201d to continue.",
            ),
            resubmit=True,
            retry_after_seconds=2,
        ),
        BY_CLASS_NAME,
    ),
    **pages.SHARED_ERRORS,
}


def answer_for(error: BaseException) -> ErrorPage:
    """The table's entry for ``error``; anything unforeseen gets the 500 page."""
    return pages.answer_for(error, ERRORS)


def render(
    page: Page,
    *,
    reference: str = "",
    submission: Submission | None = None,
    continue_href: str | None = None,
) -> dict[str, Any]:
    """The proxy response for ``page``; ``submission`` fills the re-submit form where it has one."""
    form = _resubmit_form(submission) if submission is not None else None
    return pages.render(page, reference=reference, resubmit_form=form, continue_href=continue_href)


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
