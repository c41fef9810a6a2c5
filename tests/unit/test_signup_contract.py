"""The sign-up page's error table: each error's page, log line and metric; every rejection
reason comes from an error with a page."""

from __future__ import annotations

import pytest

from fulfillment.contract import SignupRejectionReason
from fulfillment.core.errors import (
    ConfigurationError,
    DeadlineExceededError,
    FulfillmentError,
    OversizedFormError,
    StorageUnavailableError,
    UnreadableFormError,
)
from fulfillment.core.pages import render
from fulfillment.customers.errors import (
    MalformedRegistrationIdError,
    RegistrationPendingError,
    SignupAlreadyCompletedError,
    SignupSessionUnavailableError,
    UnknownSignupSessionError,
)
from fulfillment.signup import pages
from fulfillment.signup.errors import CsrfTokenError
from tests.unit.reports import raise_and_report, reported

REFUSED = "sign-up refused"
# Row by row: status, then the log line (level, message, its extra keys) and the metrics.
ROWS = [
    (MalformedRegistrationIdError("x"), 400, "WARNING", REFUSED, "MalformedRegistration"),
    (UnknownSignupSessionError("x"), 410, "WARNING", REFUSED, "UnknownRegistration"),
    (SignupSessionUnavailableError("x"), 410, "WARNING", REFUSED, "ExpiredRegistration"),
    (SignupAlreadyCompletedError("x"), 200, "WARNING", REFUSED, "AlreadyCompleted"),
    (
        RegistrationPendingError("x"),
        503,
        "INFO",
        "sign-up waits for its registration to be recorded",
        None,
    ),
    (CsrfTokenError("x"), 403, "WARNING", REFUSED, "CsrfMismatch"),
    (UnreadableFormError("x"), 400, "WARNING", REFUSED, "UnreadableForm"),
    (OversizedFormError("x"), 413, "WARNING", REFUSED, "UnreadableForm"),
    (StorageUnavailableError("ThrottlingException"), 503, "ERROR", "DynamoDB unavailable", None),
    (DeadlineExceededError("x"), 503, "WARNING", "DeadlineExceededError", None),
    (
        ConfigurationError("SIGNUP_EXTRA_FIELDS", "is not valid JSON"),
        500,
        "ERROR",
        "configuration fault: SIGNUP_EXTRA_FIELDS is not valid JSON",
        None,
    ),
    (FulfillmentError("x"), 500, "WARNING", "FulfillmentError", None),
    (KeyError("boom"), 500, "ERROR", "unexpected error", None),
]
EXTRA = {
    StorageUnavailableError: {"error": "ThrottlingException"},
    ConfigurationError: {"variable": "SIGNUP_EXTRA_FIELDS"},
}


@pytest.mark.parametrize(
    ("error", "status", "level", "message", "reason"),
    ROWS,
    ids=[type(row[0]).__name__ for row in ROWS],
)
def test_each_sign_up_error_has_its_page_log_line_and_metric(
    capsys: pytest.CaptureFixture[str],
    error: Exception,
    status: int,
    level: str,
    message: str,
    reason: str | None,
) -> None:
    answer = pages.answer_for(error)

    report = reported(lambda: raise_and_report(error, answer.report), capsys)

    assert answer.page.status == status
    (line,) = report.lines
    extra = {"reason": reason} if reason else EXTRA.get(type(error), {})
    assert (line["level"], line["message"], report.fields(line)) == (level, message, extra)
    assert ("exception" in line) == isinstance(error, KeyError)  # only the unforeseen
    assert report.metrics == ([("SignupRejected", {"Reason": reason})] if reason else [])


def test_every_reason_but_invalid_input_comes_from_an_error() -> None:
    # Invalid input is a re-rendered form, not an error; every other reason is an error class.
    reasons = {count.value for entry in pages.ERRORS.values() for count in entry.counts}
    assert reasons == set(SignupRejectionReason) - {SignupRejectionReason.INVALID_INPUT}


def test_unknown_and_expired_links_look_the_same() -> None:
    unknown = pages.answer_for(UnknownSignupSessionError("x")).page
    expired = pages.answer_for(SignupSessionUnavailableError("x")).page

    assert unknown == expired
    assert unknown.marketplace_link


def test_a_registration_not_recorded_yet_is_a_page_that_reloads_itself() -> None:
    response = render(pages.answer_for(RegistrationPendingError("x")).page, retry_href="?r=1")

    # No script (the CSP allows none): the Refresh header reloads it
    assert response["headers"]["Refresh"] == response["headers"]["Retry-After"] == "5"
    assert "<script" not in response["body"]
    assert "expired" not in response["body"]
    assert 'href="?r=1">Try again</a>' in response["body"]
