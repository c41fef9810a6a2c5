"""The sign-up function's contracts: metric reasons with infra/metrics.py, errors with pages."""

from __future__ import annotations

import pytest

from fulfillment import pages, signup
from fulfillment.errors import (
    CsrfTokenError,
    MalformedRegistrationIdError,
    OversizedFormError,
    SignupAlreadyCompletedError,
    SignupRejectionReason,
    SignupSessionUnavailableError,
    UnknownSignupSessionError,
    UnreadableFormError,
)
from infra import metrics


def test_signup_rejection_reasons_are_those_the_dashboards_know() -> None:
    assert set(metrics.SIGNUP_REJECTION_REASONS) == {r.value for r in SignupRejectionReason}
    assert {metrics.SIGNUP_COMPLETED, metrics.SIGNUP_REJECTED} <= set(metrics.METRIC_NAMES)


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
