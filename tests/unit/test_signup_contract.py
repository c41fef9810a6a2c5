"""The sign-up function's contracts: every rejection reason comes from an error with a page."""

from __future__ import annotations

import pytest

from fulfillment.contract import SignupRejectionReason
from fulfillment.core.errors import OversizedFormError, UnreadableFormError
from fulfillment.customers.errors import (
    MalformedRegistrationIdError,
    SignupAlreadyCompletedError,
    SignupSessionUnavailableError,
    UnknownSignupSessionError,
)
from fulfillment.signup import handler as signup
from fulfillment.signup import pages
from fulfillment.signup.errors import CsrfTokenError


def test_every_reason_but_invalid_input_comes_from_an_error() -> None:
    # Invalid input is a re-rendered form, not an error; every other reason is an error class.
    reasons = {reason for _, reason in signup._REJECTIONS}
    assert reasons == set(SignupRejectionReason) - {SignupRejectionReason.INVALID_INPUT}


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (MalformedRegistrationIdError("x"), 400),
        (UnknownSignupSessionError("x"), 410),
        (SignupSessionUnavailableError("x"), 410),
        (SignupAlreadyCompletedError("x"), 200),
        (CsrfTokenError("x"), 403),
        (UnreadableFormError("x"), 400),
        (OversizedFormError("x"), 413),
    ],
)
def test_each_sign_up_error_has_its_page(error: Exception, status: int) -> None:
    page = pages.page_for(error)

    assert page.status == status
    assert page is not pages.page_for(RuntimeError())


def test_unknown_and_expired_links_look_the_same() -> None:
    unknown = pages.page_for(UnknownSignupSessionError("x"))
    expired = pages.page_for(SignupSessionUnavailableError("x"))

    assert unknown == expired
    assert unknown.marketplace_link
