"""The seller hand-off: the lookup use case with a fake store, and the handler's every answer."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fulfillment.core.errors import ConfigurationError, FulfillmentError, StorageUnavailableError
from fulfillment.core.responses import SECURITY_HEADERS
from fulfillment.customers.errors import (
    MalformedRegistrationIdError,
    RegistrationPendingError,
    SignupSessionUnavailableError,
    UnknownSignupSessionError,
)
from fulfillment.customers.models import CustomerRecord, SignupSession
from fulfillment.handoff import handler as handoff
from fulfillment.handoff.lookup import lookup_registration
from local.gateway import LambdaContext
from tests.fresh_process import run_fresh
from tests.handoff_events import CALLER_ARN, registration_request
from tests.unit.reports import raise_and_report, reported

NOW = datetime(2026, 11, 26, 22, 0, tzinfo=UTC)
SESSION_ID = "s3ss10n-1d_0123456789abcdefABCDEF"
CSRF = "csrf-secret-never-handed-over"
CUSTOMER_KEY = "LICENSE#l-0123456789abcdef"
SESSION = SignupSession(
    session_id=SESSION_ID,
    customer_key=CUSTOMER_KEY,
    product_code="prod-abc123",
    expires_at=int((NOW + timedelta(hours=1)).timestamp()),
    csrf_token=CSRF,
    completed=False,
)
CUSTOMER = CustomerRecord(
    customer_key=CUSTOMER_KEY,
    product_code="prod-abc123",
    customer_aws_account_id="111122223333",
    license_arn="arn:aws:license-manager::111122223333:license:l-0123456789abcdef",
    customer_identifier=None,
    agreement_id="agmt-0123456789abcdef",
    status=None,
    signed_up_at=None,
)


@dataclass
class FakeRegistrationStore:
    sessions: dict[str, SignupSession] = field(default_factory=dict)
    customers: dict[str, CustomerRecord] = field(default_factory=dict)
    error: Exception | None = None
    error_on: str = "get_session"
    calls: list[str] = field(default_factory=list)

    def get_session(self, session_id: str) -> SignupSession | None:
        self.calls.append("get_session")
        if self.error is not None and self.error_on == "get_session":
            raise self.error
        return self.sessions.get(session_id)

    def get_customer(self, customer_key: str) -> CustomerRecord | None:
        self.calls.append("get_customer")
        if self.error is not None and self.error_on == "get_customer":
            raise self.error
        return self.customers.get(customer_key)


def _store(session: SignupSession = SESSION, customer: CustomerRecord | None = CUSTOMER) -> Any:
    return FakeRegistrationStore(
        sessions={session.session_id: session},
        customers={} if customer is None else {customer.customer_key: customer},
    )


# --------------------------------------------------------------------------- the use case


def test_live_registration_gives_the_session_and_its_customer() -> None:
    found = lookup_registration(SESSION_ID, _store(), NOW)

    assert (found.session, found.customer) == (SESSION, CUSTOMER)


@pytest.mark.parametrize(
    "registration_id",
    ["", "short", "a" * 15, "a" * 65, "has space in it 0123", "dots.are.not.ok.0123", "é" * 20],
)
def test_malformed_id_is_refused_before_any_store_call(registration_id: str) -> None:
    store = _store()

    with pytest.raises(MalformedRegistrationIdError):
        lookup_registration(registration_id, store, NOW)

    assert store.calls == []


@pytest.mark.parametrize("registration_id", ["a" * 16, "Z" * 64, "-_" * 8])
def test_ids_at_the_shape_bounds_are_looked_up(registration_id: str) -> None:
    store = _store()

    with pytest.raises(UnknownSignupSessionError):
        lookup_registration(registration_id, store, NOW)

    assert store.calls == ["get_session"]


def test_unknown_id_is_unknown() -> None:
    with pytest.raises(UnknownSignupSessionError):
        lookup_registration("x" * 32, _store(), NOW)


def test_expired_session_not_yet_deleted_by_ttl_is_unavailable() -> None:
    # Given a session whose expiry is exactly now (TTL deletion has not caught up)
    store = _store(SESSION._replace(expires_at=int(NOW.timestamp())))

    # Then it counts as gone, and its customer is never read
    with pytest.raises(SignupSessionUnavailableError) as raised:
        lookup_registration(SESSION_ID, store, NOW)
    assert type(raised.value) is SignupSessionUnavailableError
    assert store.calls == ["get_session"]


def test_session_one_second_before_expiry_is_live() -> None:
    store = _store(SESSION._replace(expires_at=int(NOW.timestamp()) + 1))

    assert lookup_registration(SESSION_ID, store, NOW).session.session_id == SESSION_ID


def test_session_without_its_customer_is_pending() -> None:
    with pytest.raises(RegistrationPendingError):
        lookup_registration(SESSION_ID, _store(customer=None), NOW)


@pytest.mark.parametrize("error_on", ["get_session", "get_customer"])
def test_storage_failure_propagates_as_the_domain_error(error_on: str) -> None:
    store = _store()
    store.error, store.error_on = StorageUnavailableError("ProvisionedThroughputExceeded"), error_on

    with pytest.raises(StorageUnavailableError):
        lookup_registration(SESSION_ID, store, NOW)


# --------------------------------------------------------------------------- the handler


def _context() -> LambdaContext:
    return LambdaContext(
        function_name="fulfillment-handoff",
        memory_limit_in_mb=256,
        timeout_seconds=10,
        log_stream_name="2026/11/26/[$LATEST]fedcba9876543210",
    )


@pytest.fixture
def context() -> LambdaContext:
    return _context()


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    from fulfillment.core.observability import logger

    stream = io.StringIO()
    handler = logger.registered_handler
    previous = handler.setStream(stream)  # type: ignore[attr-defined]
    yield stream
    handler.setStream(previous)  # type: ignore[attr-defined]


def _log_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]


def _lookup(event: dict[str, Any], context: LambdaContext, store: Any) -> dict[str, Any]:
    """The handler with ``store`` and the clock at NOW injected."""
    return handoff.lambda_handler(event, context, store=store, clock=lambda: NOW)


def _answer(response: dict[str, Any]) -> dict[str, Any]:
    assert response["headers"]["Content-Type"] == "application/json"
    assert response["headers"]["Cache-Control"] == "no-store"
    assert response["headers"]["Content-Security-Policy"].startswith("default-src 'none'")
    assert SECURITY_HEADERS.items() <= response["headers"].items()
    assert response["isBase64Encoded"] is False
    body: dict[str, Any] = json.loads(response["body"])
    return body


def test_found_answers_200_with_the_customer_and_nothing_secret(
    context: LambdaContext, logs: io.StringIO
) -> None:
    # Given a live registration whose customer signed up on the built-in page
    customer = CUSTOMER._replace(status="subscribe-success", signed_up_at="2026-11-26T21:59:00Z")
    session = SESSION._replace(completed=True)

    # When the seller's backend asks for it
    response = _lookup(registration_request(SESSION_ID), context, _store(session, customer))

    # Then it gets the Marketplace identity, with null where Marketplace gave nothing
    assert response["statusCode"] == 200
    body = _answer(response)
    assert body == {
        "registration": {
            "id": SESSION_ID,
            "expiresAt": datetime.fromtimestamp(session.expires_at, UTC).isoformat(),
            "signUpCompleted": True,
        },
        "customer": {
            "productCode": "prod-abc123",
            "customerAWSAccountId": "111122223333",
            "licenseArn": CUSTOMER.license_arn,
            "customerIdentifier": None,
            "agreementId": "agmt-0123456789abcdef",
            "offerId": None,
            "freeTrial": None,
            "status": "subscribe-success",
            "signedUpAt": "2026-11-26T21:59:00Z",
        },
    }
    assert datetime.fromisoformat(body["registration"]["expiresAt"]).tzinfo is not None
    # And neither the CSRF token nor the internal key leaves the function
    assert CSRF not in response["body"] and "LICENSE#" not in response["body"]
    # And the log names the caller and the outcome, not the customer's identifiers
    (line,) = [
        r for r in _log_lines(logs) if r["message"] == "registration handed off to the seller"
    ]
    assert line["caller"] == CALLER_ARN
    assert line["outcome"] == "Found"
    assert "111122223333" not in logs.getvalue() and CSRF not in logs.getvalue()


def test_caller_falls_back_to_the_caller_field_without_a_user_arn(
    context: LambdaContext, logs: io.StringIO
) -> None:
    event = registration_request("u" * 32)
    event["requestContext"]["identity"]["userArn"] = None

    _lookup(event, context, _store())

    (line,) = _log_lines(logs)[-1:]
    assert line["caller"] == "AROAZZZZEXAMPLEROLEID:seller-backend"
    assert line["outcome"] == "Unknown"


@pytest.mark.parametrize("registration_id", [None, "", "../../customers", "a" * 65, "<script>"])
def test_malformed_id_answers_400_without_touching_storage(
    context: LambdaContext, registration_id: str | None
) -> None:
    store = _store()

    response = _lookup(registration_request(registration_id), context, store)

    assert response["statusCode"] == 400
    assert _answer(response)["message"] == "The registration id is malformed."
    assert store.calls == []
    assert "<script>" not in response["body"]


@pytest.mark.parametrize(
    ("store", "outcome"),
    [
        (_store(SESSION._replace(session_id="another-registration-0123")), "Unknown"),
        (_store(SESSION._replace(expires_at=int(NOW.timestamp()))), "Expired"),
    ],
    ids=["unknown", "expired"],
)
def test_unknown_or_expired_answers_the_same_404(
    context: LambdaContext, logs: io.StringIO, store: Any, outcome: str
) -> None:
    event = registration_request(SESSION_ID)

    response = _lookup(event, context, store)

    # Then the caller cannot tell the cases apart; operations can, in the log
    assert response["statusCode"] == 404
    assert _answer(response) == {
        "message": handoff.NOT_FOUND,
        "requestId": event["requestContext"]["requestId"],
    }
    assert "Retry-After" not in response["headers"]
    assert _log_lines(logs)[-1]["outcome"] == outcome


def test_a_live_session_whose_customer_is_not_recorded_yet_answers_503_with_retry_after(
    context: LambdaContext, logs: io.StringIO
) -> None:
    # Given a registration parked after its customer write failed (its session is stored)
    event = registration_request(SESSION_ID)

    response = _lookup(event, context, _store(customer=None))

    # Then the seller's backend is told to come back, not that the registration is gone
    assert response["statusCode"] == 503
    assert response["headers"]["Retry-After"] == "5"
    assert _answer(response) == {
        "message": "The registration is still being recorded; try again shortly.",
        "requestId": event["requestContext"]["requestId"],
    }
    assert _log_lines(logs)[-1]["outcome"] == "CustomerPending"


def test_storage_failure_answers_503_with_retry_after(
    context: LambdaContext, logs: io.StringIO
) -> None:
    store = _store()
    store.error = StorageUnavailableError("ThrottlingException")
    event = registration_request(SESSION_ID)

    response = _lookup(event, context, store)

    assert response["statusCode"] == 503
    assert response["headers"]["Retry-After"] == "5"
    assert _answer(response)["requestId"] == event["requestContext"]["requestId"]
    line = _log_lines(logs)[-1]
    assert (line["level"], line["outcome"], line["error"]) == (
        "ERROR",
        "StorageUnavailable",
        "ThrottlingException",
    )


def test_unexpected_error_answers_500_with_the_request_id_and_no_detail(
    context: LambdaContext, logs: io.StringIO
) -> None:
    store = _store()
    store.error = KeyError("customer_pk with a detail nobody outside should see")
    event = registration_request(SESSION_ID)

    response = _lookup(event, context, store)

    assert response["statusCode"] == 500
    assert _answer(response) == {
        "message": "Internal error.",
        "requestId": event["requestContext"]["requestId"],
    }
    line = _log_lines(logs)[-1]
    assert line["outcome"] == "Unexpected"
    assert "KeyError" in line["exception"]


REFUSED = "registration lookup refused"
# The hand-off's table, row by row: status, outcome, then the log line (level, message, the
# error's details) each error gets.
ROWS = [
    (MalformedRegistrationIdError("x"), 400, "MalformedId", "WARNING", REFUSED, {}),
    (UnknownSignupSessionError("x"), 404, "Unknown", "INFO", REFUSED, {}),
    (SignupSessionUnavailableError("x"), 404, "Expired", "INFO", REFUSED, {}),
    (RegistrationPendingError("x"), 503, "CustomerPending", "WARNING", REFUSED, {}),
    (StorageUnavailableError("ThrottlingException"), 503, "StorageUnavailable", "ERROR", REFUSED,
     {"error": "ThrottlingException"}),
    (ConfigurationError("CUSTOMERS_TABLE_NAME", "is not set"), 500, "ConfigurationFault", "ERROR",
     REFUSED, {"variable": "CUSTOMERS_TABLE_NAME"}),
    (FulfillmentError("x"), 500, "Unexpected", "ERROR", "registration lookup failed unexpectedly",
     {}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("error", "status", "outcome", "level", "message", "details"),
    ROWS,
    ids=[type(row[0]).__name__ for row in ROWS],
)
def test_error_table_gives_each_error_its_status_outcome_and_log_line(
    capsys: pytest.CaptureFixture[str],
    error: Exception,
    status: int,
    outcome: str,
    level: str,
    message: str,
    details: dict[str, str],
) -> None:
    answer = handoff.answer_for(error)

    report = reported(lambda: raise_and_report(error, lambda e: answer.report(e, "arn:c")), capsys)

    assert answer.status == status
    (line,) = report.lines
    assert (line["level"], line["message"]) == (level, message)
    assert report.fields(line) == {"caller": "arn:c", "outcome": outcome, **details}
    assert ("exception" in line) == (outcome == "Unexpected")  # only the unforeseen
    assert report.metrics == []  # the hand-off counts nothing by error


def test_error_table_resolves_subclasses_to_the_most_specific_entry() -> None:
    class NarrowerStorageError(StorageUnavailableError):
        pass

    assert handoff.answer_for(NarrowerStorageError("x")).status == 503
    assert handoff.answer_for(RegistrationPendingError("x")).outcome == "CustomerPending"
    assert handoff.answer_for(FulfillmentError("x")) is handoff.UNFORESEEN


# A fresh interpreter, as in a new Lambda container: pytest's own warning capture restores
# the filters a module installs at import, so this cannot be observed in-process.
_LOOKUP_IN_A_FRESH_PROCESS = """
from fulfillment.handoff import handler as handoff
from tests.handoff_events import registration_request
from tests.unit.test_handoff import NOW, SESSION_ID, _context, _store
event, store = registration_request(SESSION_ID), _store()
print(handoff.lambda_handler(event, _context(), store=store, clock=lambda: NOW)["statusCode"])
"""


def test_a_lookup_that_counts_no_metric_writes_no_warning_to_the_log_stream() -> None:
    # Given a new container, when a registration is looked up (no metric is added)
    done = run_fresh(
        _LOOKUP_IN_A_FRESH_PROCESS,
        CUSTOMERS_TABLE_NAME="customers",
        POWERTOOLS_METRICS_NAMESPACE="Test",
    )

    # Then it is found, and Powertools' "No application metrics" UserWarning does not land
    # in the function's log stream (stderr)
    assert done.stdout.splitlines()[-1] == "200"
    assert "Warning" not in done.stderr
