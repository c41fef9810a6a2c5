"""Fault injection at every step of a registration: the real handler and recovery processor,
moto's DynamoDB and SQS server, the Marketplace stand-in over HTTP.

Marketplace faults come from the stand-in itself. moto cannot fail on demand, so DynamoDB and
SQS faults are injected with a botocore ``before-send`` hook on the function's client
(``failing`` below): it answers a chosen operation with an AWS error response (which botocore
retries as it would a real one) or a connection timeout, N times. The fulfillment URL gets
its Registrar injected (``fulfillment_url``) on the functions' own clients, whose retries make
every configured attempt without botocore's backoff sleeps (tests/retries.py); the recovery
processor runs as deployed, on the same clients. docs/reliability.md lists each fault with
the test that proves it.
"""

from __future__ import annotations

import dataclasses
import html
import io
import json
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError
from botocore.httpsession import URLLib3Session

from fulfillment.core import aws
from fulfillment.core.errors import StorageUnavailableError
from fulfillment.customers.models import MalformedParkedRegistrationError
from fulfillment.customers.store import DynamoDBCustomerStore
from fulfillment.recovery import handler as recovery
from fulfillment.recovery.records import DynamoDBIdempotencyRecords
from fulfillment.registration import handler as registration_handler
from fulfillment.registration import idempotency
from local.dynamodb import RunningDynamoDB
from local.events import lambda_sqs_record
from local.gateway import LambdaContext
from local.recovery import start_local_recovery
from tests.events import form_post, rest_event
from tests.handoff_events import registration_request
from tests.integration.conftest import (
    PRODUCT,
    REGISTRATION_URL,
    FunctionClients,
    Handler,
    Stack,
    all_logs,
    local_function_environment,
    registrar,
)
from tests.secrets_registry import TOKEN

CUSTOMER_PK = "LICENSE#l-0123456789abcdef0123456789abcdef"
THROTTLED = "ProvisionedThroughputExceededException"
DEFERRED_TEXT = "We received your subscription and are finishing setting up your account"


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


@contextmanager
def failing(
    client: Any,
    operation: str | tuple[str, ...],
    *,
    times: int,
    table: str | None = None,
    timeout: bool = False,
) -> Iterator[list[int]]:
    """Fail ``operation`` (or any of them; on ``table`` only, if given) ``times`` times on
    ``client``.

    DynamoDB gets a 400 ProvisionedThroughputExceededException, retried by botocore like a
    real throttle; ``timeout`` raises ConnectTimeoutError instead (a service that is down).
    Yields a one-item list counting the failures served.
    """
    served = [0]
    operations = (operation,) if isinstance(operation, str) else operation

    def hook(event_name: str, request: Any, **_: Any) -> AWSResponse | None:
        if event_name.rpartition(".")[2] not in operations or served[0] >= times:
            return None
        if table is not None and table not in _tables(request.body):
            return None
        served[0] += 1
        if timeout:
            raise ConnectTimeoutError(endpoint_url=request.url)
        body = json.dumps(
            {"__type": f"com.amazonaws.dynamodb.v20120810#{THROTTLED}", "message": "injected"}
        ).encode()
        return AWSResponse(request.url, 400, {"x-amzn-requestid": "injected"}, _Raw(body))

    client.meta.events.register_first("before-send", hook, unique_id=f"fault-{id(hook)}")
    try:
        yield served
    finally:
        client.meta.events.unregister("before-send", unique_id=f"fault-{id(hook)}")


def _tables(body: bytes | None) -> set[str]:
    """The tables a DynamoDB request names, a transaction's included."""
    request = json.loads(body or b"{}")
    items = [next(iter(item.values())) for item in request.get("TransactItems", [])]
    return {t for t in (request.get("TableName"), *(i.get("TableName") for i in items)) if t}


# A registration's session write: one TransactWriteItems for a customer with a license (it
# checks the key before license ids in the same call), a PutItem otherwise and in replays.
SESSION_WRITES = ("PutItem", "TransactWriteItems")


def _api_context(timeout_seconds: float) -> LambdaContext:
    """The fulfillment function's context, with ``timeout_seconds`` left from now."""
    return LambdaContext(
        function_name="fulfillment-api",
        memory_limit_in_mb=512,
        timeout_seconds=timeout_seconds,
        log_stream_name="2026/11/26/[$LATEST]0123456789abcdef",
    )


@contextmanager
def answer_lost(client: Any, operation: str) -> Iterator[list[int]]:
    """Send the first ``operation`` on ``client`` for real, then lose its answer (a read
    timeout): DynamoDB applied it, and botocore retries it. Yields a one-item count."""
    served = [0]
    http = URLLib3Session()

    def hook(event_name: str, request: Any, **_: Any) -> None:
        if not event_name.endswith(f".{operation}") or served[0]:
            return
        served[0] += 1
        http.send(request)
        raise ReadTimeoutError(endpoint_url=request.url)

    client.meta.events.register_first("before-send", hook, unique_id=f"lost-{id(hook)}")
    try:
        yield served
    finally:
        client.meta.events.unregister("before-send", unique_id=f"lost-{id(hook)}")


def _recovery_context() -> LambdaContext:
    return LambdaContext(
        function_name="fulfillment-recovery",
        memory_limit_in_mb=1024,
        timeout_seconds=20,
        log_stream_name="2026/11/26/[$LATEST]0123456789abcdef",
    )


def _sqs_event(stack: Stack, messages: list[dict[str, Any]]) -> dict[str, Any]:
    arn = stack.sqs.get_queue_attributes(
        QueueUrl=stack.recovery_queue_url, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    return {"Records": [lambda_sqs_record(m, arn, "us-east-1") for m in messages]}


def _sessions(stack: Stack) -> list[dict[str, Any]]:
    return [item for item in stack.items() if item["sk"]["S"] == "SESSION"]


def _metric_names(stdout: str) -> list[str]:
    return [
        metric["Name"]
        for line in stdout.splitlines()
        if line.startswith('{"_aws"')
        for directive in json.loads(line)["_aws"]["CloudWatchMetrics"]
        for metric in directive["Metrics"]
    ]


def _error_codes(stdout: str) -> list[str]:
    """The ErrorCode of every MarketplaceError metric in ``stdout``."""
    return [
        json.loads(line)["ErrorCode"]
        for line in stdout.splitlines()
        if line.startswith('{"_aws"') and '"ErrorCode"' in line
    ]


def _continue_href(response: dict[str, Any]) -> str:
    (href,) = re.findall(r'<a class="button" href="([^"]+)">Continue</a>', response["body"])
    return html.unescape(href)


def _assert_deferred_page(response: dict[str, Any], token: str) -> str:
    """The honest 202 page; returns the registration id its Continue link carries."""
    assert response["statusCode"] == 202, response.get("body")
    assert DEFERRED_TEXT in response["body"]
    assert response["headers"]["Retry-After"].isdigit()
    assert "Location" not in response["headers"]
    href = _continue_href(response)
    assert href.startswith(REGISTRATION_URL + "&registration=")
    assert token not in response["body"]
    return parse_qs(urlsplit(href).query)["registration"][0]


def _replay(stack: Stack, message: dict[str, Any]) -> None:
    """Deliver ``message`` to the recovery processor as its event source does: alone. The
    processor writes through the function's DynamoDB client, where ``failing`` injects faults."""
    processor = recovery.RecoveryProcessor(
        customers=DynamoDBCustomerStore(aws.dynamodb(), stack.customers_table),
        records=DynamoDBIdempotencyRecords(aws.dynamodb(), stack.idempotency_table),
    )
    recovery.lambda_handler(_sqs_event(stack, [message]), _recovery_context(), processor=processor)


def _replay_all(stack: Stack) -> None:
    messages = stack.recovery_messages()
    assert messages, "nothing was parked on the recovery queue"
    for message in messages:
        _replay(stack, message)


# -- Marketplace ------------------------------------------------------------------------------


def test_marketplace_throttling_beyond_retries_is_503_and_a_resubmit_works_later(
    stack: Stack,
    lambda_context: LambdaContext,
    fulfillment_url: Handler,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given Marketplace throttles every attempt botocore makes
    stack.marketplace.throttle_next(10)
    token = stack.marketplace.issue_token("new-style")

    # When the buyer posts the token, then the Try again page, nothing stored, nothing parked
    response = fulfillment_url(form_post(token), lambda_context)
    assert response["statusCode"] == 503
    assert response["headers"]["Retry-After"] == "5"
    assert stack.marketplace.resolve_calls == 3  # botocore's standard mode: 3 attempts
    assert stack.items() == [] and stack.items(stack.idempotency_table) == []
    assert stack.recovery_messages() == []
    # And its Try again button re-posts the token (only in the form, never in a link)
    body = response["body"]
    assert '<form method="post">' in body and "Try again" in body
    assert f'name="x-amzn-marketplace-token" value="{token}"' in body
    assert token not in body.split("<form", 1)[0]
    assert "ThrottlingException" in _error_codes(capsys.readouterr().out)

    # When Marketplace recovers and the buyer presses Try again, then it registers
    stack.marketplace.throttle_next(0)
    assert fulfillment_url(form_post(token), lambda_context)["statusCode"] == 303
    assert stack.customer(CUSTOMER_PK)["registration_count"] == {"N": "1"}  # type: ignore[index]


def test_marketplace_500_beyond_retries_is_503_and_a_resubmit_works_later(
    stack: Stack, lambda_context: LambdaContext, fulfillment_url: Handler
) -> None:
    stack.marketplace.internal_error_next(10)
    token = stack.marketplace.issue_token("new-style")

    response = fulfillment_url(form_post(token), lambda_context)

    assert response["statusCode"] == 503
    assert response["headers"]["Retry-After"] == "5"
    assert "Try again" in response["body"]
    assert stack.marketplace.resolve_calls == 3
    assert stack.items() == [] and stack.items(stack.idempotency_table) == []
    stack.marketplace.internal_error_next(0)
    assert fulfillment_url(form_post(token), lambda_context)["statusCode"] == 303


def test_marketplace_timeout_is_503_before_the_invocation_ends_and_a_resubmit_works(
    stack: Stack, lambda_context: LambdaContext, fulfillment_url: Handler
) -> None:
    # Given an invocation with 6 s left and a stand-in slower than the 2 s read timeout
    short = _api_context(timeout_seconds=6)
    stack.marketplace.set_latency(2.5)
    token = stack.marketplace.issue_token("new-style")

    response = fulfillment_url(form_post(token), short)

    # Then our Try again page, with time left in the invocation, nothing stored or parked
    assert response["statusCode"] == 503
    assert "Try again" in response["body"]
    assert short.get_remaining_time_in_millis() > 0
    assert stack.items() == [] and stack.items(stack.idempotency_table) == []
    assert stack.recovery_messages() == []
    # And no further attempt started after the deadline: the stand-in, still answering the
    # abandoned one, counts one call in all
    stack.marketplace.set_latency(0)
    waited = time.monotonic() + 5
    while stack.marketplace.resolve_calls < 1 and time.monotonic() < waited:
        time.sleep(0.05)
    time.sleep(0.6)
    assert stack.marketplace.resolve_calls == 1
    # And the resubmit succeeds
    assert fulfillment_url(form_post(token), lambda_context)["statusCode"] == 303


# -- DynamoDB ---------------------------------------------------------------------------------


def test_dynamodb_failure_on_the_idempotency_write_is_503_nothing_stored_and_retry_works(
    stack: Stack, lambda_context: LambdaContext, fulfillment_url: Handler, clients: FunctionClients
) -> None:
    token = stack.marketplace.issue_token("new-style")

    # Given the idempotency table throttles every attempt of the claim (PutItem)
    with failing(clients.dynamodb, "PutItem", table=stack.idempotency_table, times=10) as served:
        response = fulfillment_url(form_post(token), lambda_context)

    # Then the Try again page; Marketplace was not even asked; nothing stored, nothing parked
    assert served[0] == 3  # botocore's three attempts, each refused
    assert response["statusCode"] == 503
    assert "Try again" in response["body"]
    assert stack.marketplace.resolve_calls_for(token) == 0
    assert stack.items() == [] and stack.items(stack.idempotency_table) == []
    assert stack.recovery_messages() == []
    # And the buyer's retry registers normally
    assert fulfillment_url(form_post(token), lambda_context)["statusCode"] == 303


@pytest.mark.parametrize(
    ("operation", "written_before_replay"),
    [(SESSION_WRITES, "nothing"), ("UpdateItem", "session")],
    ids=["session-write", "customer-write"],
)
def test_dynamodb_failure_on_the_session_or_customer_write_is_202_and_the_processor_replays_once(
    stack: Stack,
    lambda_context: LambdaContext,
    capsys: pytest.CaptureFixture[str],
    operation: str | tuple[str, ...],
    written_before_replay: str,
    fulfillment_url: Handler,
    clients: FunctionClients,
) -> None:
    token = stack.marketplace.issue_token("new-style")

    # Given the customers table refuses the session (PutItem) or customer (UpdateItem) write
    with failing(clients.dynamodb, operation, table=stack.customers_table, times=10):
        response = fulfillment_url(form_post(token), lambda_context)
        # And a resubmission while DynamoDB is still down replays the same answer
        again = fulfillment_url(form_post(token), lambda_context)

    # Then the buyer is told the truth (202) with a Continue link to the sign-up target
    registration = _assert_deferred_page(response, token)
    assert _continue_href(again) == _continue_href(response)
    assert stack.marketplace.resolve_calls_for(token) == 1
    assert "RegistrationDeferred" in _metric_names(capsys.readouterr().out)
    # And the customer is not recorded yet; the session only if its own write succeeded
    assert stack.customer(CUSTOMER_PK) is None
    assert len(_sessions(stack)) == (1 if written_before_replay == "session" else 0)
    # And the resolved registration waits on the recovery queue, without the token
    (message,) = stack.recovery_messages()
    parked = json.loads(message["Body"])
    assert token not in message["Body"]
    assert parked["registration_id"] == registration
    assert parked["customer_aws_account_id"] == "111122223333"

    # When the processor replays it
    _replay(stack, message)

    # Then session and customer are stored exactly once, and the buyer's link works
    customer = stack.customer(CUSTOMER_PK)
    assert customer is not None
    assert customer["registration_count"] == {"N": "1"}
    assert customer["last_registration_id"] == {"S": registration}
    (session,) = _sessions(stack)
    assert session["pk"] == {"S": f"SESSION#{registration}"}
    assert session["customer_pk"] == {"S": CUSTOMER_PK}
    assert session["csrf_token"]["S"] == parked["csrf_token"]
    assert session["expires_at"] == {"N": str(parked["session_expires_at"])}
    assert "RegistrationRecovered" in _metric_names(capsys.readouterr().out)


def _parked_after_the_customer_write(
    stack: Stack, fulfillment_url: Handler, clients: FunctionClients, context: LambdaContext
) -> str:
    """A registration whose customer write failed, so it is parked with its session stored;
    returns its id."""
    token = stack.marketplace.issue_token("new-style")
    with failing(clients.dynamodb, "UpdateItem", table=stack.customers_table, times=10):
        response = fulfillment_url(form_post(token), context)
    registration = _assert_deferred_page(response, token)
    assert len(_sessions(stack)) == 1 and stack.customer(CUSTOMER_PK) is None
    return registration


def test_after_a_parked_customer_write_the_handoff_answers_503_with_retry_after_until_replayed(
    stack: Stack,
    lambda_context: LambdaContext,
    fulfillment_url: Handler,
    seller_handoff: Handler,
    clients: FunctionClients,
) -> None:
    # Given a registration parked after its customer write failed (its session is stored)
    registration = _parked_after_the_customer_write(stack, fulfillment_url, clients, lambda_context)

    # When the seller's backend looks the id up before the replay
    early = seller_handoff(registration_request(registration), lambda_context)

    # Then it is told to come back shortly, not that the registration is gone
    assert early["statusCode"] == 503, early["body"]
    assert early["headers"]["Retry-After"] == "5"
    assert early["headers"]["Content-Type"] == "application/json"
    assert "still being recorded" in json.loads(early["body"])["message"]
    # And once the processor has replayed it, the lookup finds the customer
    _replay_all(stack)
    found = seller_handoff(registration_request(registration), lambda_context)
    assert found["statusCode"] == 200
    assert json.loads(found["body"])["customer"]["customerAWSAccountId"] == "111122223333"


@pytest.mark.parametrize("operation", [SESSION_WRITES, "UpdateItem"], ids=["session", "customer"])
def test_an_early_continue_to_the_builtin_signup_page_shows_still_finishing_until_replayed(
    stack: Stack,
    lambda_context: LambdaContext,
    clients: FunctionClients,
    signup_page: Handler,
    operation: str | tuple[str, ...],
) -> None:
    # Given buyers go to the built-in sign-up page, and the session (PutItem) or customer
    # (UpdateItem) write fails, so the registration is parked
    builtin = registrar(clients, registration_url=None)
    token = stack.marketplace.issue_token("new-style")
    with failing(clients.dynamodb, operation, table=stack.customers_table, times=10):
        deferred = registration_handler.lambda_handler(
            form_post(token), lambda_context, registrar=builtin
        )
    assert deferred["statusCode"] == 202
    link = urlsplit(_continue_href(deferred))
    assert link.path.endswith("/signup")
    query = parse_qs(link.query)

    # When the buyer chooses Continue before the processor has replayed it
    early = signup_page(rest_event(method="GET", query=query, content_type=None), lambda_context)

    # Then a page that says so and reloads itself (no script), not "link expired"
    assert early["statusCode"] == 503, early["body"]
    assert early["headers"]["Refresh"] == "5"
    assert early["headers"]["Retry-After"] == "5"
    assert "We are still setting up your account" in early["body"]
    assert "expired" not in early["body"]
    assert "<script" not in early["body"]
    assert "script-src" not in early["headers"]["Content-Security-Policy"]
    # And once replayed, the same link opens the sign-up form
    _replay_all(stack)
    ready = signup_page(rest_event(method="GET", query=query, content_type=None), lambda_context)
    assert ready["statusCode"] == 200
    assert 'name="csrf_token"' in ready["body"]


def test_a_signup_sent_before_its_parked_customer_is_replayed_keeps_the_form_and_stores_nothing(
    stack: Stack,
    lambda_context: LambdaContext,
    fulfillment_url: Handler,
    signup_page: Handler,
    clients: FunctionClients,
) -> None:
    # Given a registration parked after its customer write failed (its session is stored)
    registration = _parked_after_the_customer_write(stack, fulfillment_url, clients, lambda_context)
    (session,) = _sessions(stack)
    fields = {
        "registration": registration,
        "csrf_token": session["csrf_token"]["S"],
        "company": "Example Corp",
        "contact_name": "Jane Q. Buyer",
        "email": "jane.buyer@example.com",
    }

    # When the sign-up form is sent before the replay
    early = signup_page(rest_event(method="POST", body=urlencode(fields)), lambda_context)

    # Then the buyer keeps what they typed and is told to send it again shortly
    assert early["statusCode"] == 503
    assert early["headers"]["Retry-After"] == "5"
    assert "We are still finishing setting up your account" in early["body"]
    assert 'value="Example Corp"' in early["body"]
    assert stack.items(stack.contacts_table) == []
    # And after the replay the same form is accepted
    _replay_all(stack)
    done = signup_page(rest_event(method="POST", body=urlencode(fields)), lambda_context)
    assert done["statusCode"] == 200
    assert len(stack.items(stack.contacts_table)) == 1


def test_a_signup_whose_answer_was_lost_and_retried_is_confirmed_not_already_complete(
    stack: Stack,
    lambda_context: LambdaContext,
    fulfillment_url: Handler,
    signup_page: Handler,
    clients: FunctionClients,
) -> None:
    # Given a registered buyer on the sign-up form
    registered = fulfillment_url(
        form_post(stack.marketplace.issue_token("new-style")), lambda_context
    )
    assert registered["statusCode"] == 303
    (session,) = _sessions(stack)
    fields = {
        "registration": session["pk"]["S"].removeprefix("SESSION#"),
        "csrf_token": session["csrf_token"]["S"],
        "company": "Example Corp",
        "contact_name": "Jane Q. Buyer",
        "email": "jane.buyer@example.com",
    }

    # When the sign-up's transaction is applied but its answer is lost, and botocore retries
    with answer_lost(clients.dynamodb, "TransactWriteItems") as lost:
        done = signup_page(rest_event(method="POST", body=urlencode(fields)), lambda_context)

    # Then the buyer sees the confirmation (not "your sign-up is complete" from an earlier
    # visit they never made), and the contacts are stored once
    assert lost[0] == 1
    assert done["statusCode"] == 200
    assert "Thank you, your account is set up" in done["body"]
    assert len(stack.items(stack.contacts_table)) == 1


def test_a_session_write_whose_answer_was_lost_and_retried_registers_once(
    stack: Stack, lambda_context: LambdaContext, fulfillment_url: Handler, clients: FunctionClients
) -> None:
    # When the session's transaction (it also checks the key before license ids) is applied
    # but its answer is lost, and botocore retries it (moto, unlike DynamoDB, then refuses
    # the retry's condition on the session it already holds)
    token = stack.marketplace.issue_token("new-style")
    with answer_lost(clients.dynamodb, "TransactWriteItems") as lost:
        response = fulfillment_url(form_post(token), lambda_context)

    # Then the buyer goes on to sign-up, with one session and one new customer stored
    assert lost[0] == 1
    assert response["statusCode"] == 303
    assert len(_sessions(stack)) == 1
    assert stack.customer(CUSTOMER_PK)["registration_count"] == {"N": "1"}
    assert stack.recovery_messages() == []


def test_deadline_after_resolve_customer_is_202_and_the_processor_replays(
    stack: Stack, fulfillment_url: Handler, clients: FunctionClients
) -> None:
    # Given an invocation whose deadline (4 s reserve) passes while ResolveCustomer answers:
    # 5.2 s left (deadline at 1.2 s, grace until 2.7 s), Marketplace takes 1.6 s (inside its
    # read timeout), so the session write finds no time left, and the grace still lets the
    # registration be parked and its idempotency record saved
    context = _api_context(timeout_seconds=5.2)
    stack.marketplace.set_latency(1.6)
    # Built ahead (a warm environment): on a loaded test machine, building the client inside
    # the 1.1 s grace window would make this test about machine speed, not the deadline.
    assert clients.sqs is not None
    token = stack.marketplace.issue_token("new-style")

    response = fulfillment_url(form_post(token), context)

    _assert_deferred_page(response, token)
    assert context.get_remaining_time_in_millis() > 0
    assert stack.customer(CUSTOMER_PK) is None
    _replay_all(stack)
    assert stack.customer(CUSTOMER_PK)["registration_count"] == {"N": "1"}  # type: ignore[index]


def test_parked_then_the_idempotency_save_fails_is_202_and_a_retry_never_resolves_again(
    stack: Stack,
    lambda_context: LambdaContext,
    fulfillment_url: Handler,
    clients: FunctionClients,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given an invocation with 7 s left (its end passes within this test; 4.5 s of work before
    # the deadline's grace, so a loaded CI machine still parks); the SQS client built ahead,
    # as in a warm environment
    short = _api_context(timeout_seconds=7.0)
    assert clients.sqs is not None
    token = stack.marketplace.issue_token("new-style")

    # When DynamoDB fails on every table once the token is claimed: the session write, and
    # then Powertools' save of the idempotency record after the registration was parked
    with (
        failing(clients.dynamodb, SESSION_WRITES, table=stack.customers_table, times=10),
        failing(clients.dynamodb, "UpdateItem", table=stack.idempotency_table, times=10) as saves,
    ):
        response = fulfillment_url(form_post(token), short)

    # Then the buyer gets the 202 page all the same (not the 503 "nothing was half-done")
    registration = _assert_deferred_page(response, token)
    assert saves[0] == 3
    (record,) = stack.items(stack.idempotency_table)
    assert record["status"] == {"S": "INPROGRESS"}
    (message,) = stack.recovery_messages()

    # When the buyer tries again after that invocation has ended (where Powertools alone would
    # run the token again), waiting at most 0.3 s for the earlier request
    while short.get_remaining_time_in_millis() > 0:
        time.sleep(0.05)
    monkeypatch.setattr(idempotency, "IN_PROGRESS_WAIT_SECONDS", 0.3)
    retry = fulfillment_url(form_post(token), lambda_context)

    # Then "still being set up" (409), and Marketplace is not asked a second time
    assert retry["statusCode"] == 409
    assert stack.marketplace.resolve_calls_for(token) == 1

    # When the processor replays the parked registration, a resubmission replays the 202 page
    # with the same Continue link, from the record the replay completed
    _replay(stack, message)
    again = fulfillment_url(form_post(token), lambda_context)
    assert again["statusCode"] == 202
    assert _continue_href(again) == _continue_href(response)
    assert stack.marketplace.resolve_calls_for(token) == 1
    # And one registration in the end: counted once, one session (the one the link opens)
    customer = stack.customer(CUSTOMER_PK)
    assert customer is not None
    assert customer["registration_count"] == {"N": "1"}
    assert customer["last_registration_id"] == {"S": registration}
    assert [s["pk"]["S"] for s in _sessions(stack)] == [f"SESSION#{registration}"]


def test_a_park_that_uses_the_last_seconds_is_202_though_the_record_cannot_be_saved(
    stack: Stack, fulfillment_url: Handler, clients: FunctionClients
) -> None:
    # Given an invocation with 5.2 s left whose session write fails, and a recovery queue that
    # answers only once the deadline's grace (2.5 s before the end) has passed
    context = _api_context(timeout_seconds=5.2)
    token = stack.marketplace.issue_token("new-style")

    def slow_send(event_name: str, **_: Any) -> None:
        while event_name.endswith(".SendMessage") and context.get_remaining_time_in_millis() > 2300:
            time.sleep(0.02)

    # After the deadline hook, which lets the send start in time
    clients.sqs.meta.events.register_last("before-send", slow_send)
    with failing(clients.dynamodb, SESSION_WRITES, table=stack.customers_table, times=10):
        response = fulfillment_url(form_post(token), context)

    # Then the 202 page, though no time was left to save the idempotency record
    registration = _assert_deferred_page(response, token)
    (record,) = stack.items(stack.idempotency_table)
    assert record["status"] == {"S": "INPROGRESS"}
    # And the replay completes it: a resubmission replays the 202, Marketplace asked once
    _replay_all(stack)
    again = fulfillment_url(form_post(token), _api_context(timeout_seconds=20))
    assert _continue_href(again) == _continue_href(response)
    assert stack.marketplace.resolve_calls_for(token) == 1
    assert stack.customer(CUSTOMER_PK)["last_registration_id"] == {"S": registration}  # type: ignore[index]


def test_a_stored_registration_whose_idempotency_save_fails_still_sends_the_buyer_on(
    stack: Stack, lambda_context: LambdaContext, fulfillment_url: Handler, clients: FunctionClients
) -> None:
    token = stack.marketplace.issue_token("new-style")

    # Given session and customer are stored, but the idempotency record's save is refused
    with failing(clients.dynamodb, "UpdateItem", table=stack.idempotency_table, times=10):
        response = fulfillment_url(form_post(token), lambda_context)

    # Then the buyer is sent on to the sign-up target (the registration happened), not to a
    # 503 that would invite a second registration
    assert response["statusCode"] == 303
    assert response["headers"]["Location"].startswith(REGISTRATION_URL + "&registration=")
    assert stack.customer(CUSTOMER_PK)["registration_count"] == {"N": "1"}  # type: ignore[index]
    assert stack.recovery_messages() == []


def test_dynamodb_failure_on_both_writes_and_sqs_down_is_503_no_idempotency_record_retry_works(
    stack: Stack, lambda_context: LambdaContext, fulfillment_url: Handler, clients: FunctionClients
) -> None:
    token = stack.marketplace.issue_token("new-style")

    # Given the session write fails and the recovery queue cannot be reached either
    with (
        failing(clients.dynamodb, SESSION_WRITES, table=stack.customers_table, times=10),
        failing(clients.sqs, "SendMessage", times=10, timeout=True) as sends,
    ):
        response = fulfillment_url(form_post(token), lambda_context)

    # Then the Try again page (nothing was promised), and no record blocks the retry
    assert sends[0] == 3
    assert response["statusCode"] == 503
    assert "Try again" in response["body"]
    assert stack.items() == [] and stack.items(stack.idempotency_table) == []
    assert stack.recovery_messages() == []
    # And the retry, with everything healthy again, registers the customer once
    assert fulfillment_url(form_post(token), lambda_context)["statusCode"] == 303
    assert stack.customer(CUSTOMER_PK)["registration_count"] == {"N": "1"}  # type: ignore[index]


# -- the recovery processor -------------------------------------------------------------------


def _park(
    stack: Stack, context: LambdaContext, fulfillment_url: Handler, clients: FunctionClients
) -> dict[str, Any]:
    """One new-style registration parked (its customer write failed); its recovery message."""
    token = stack.marketplace.issue_token("new-style")
    with failing(clients.dynamodb, "UpdateItem", table=stack.customers_table, times=10):
        assert fulfillment_url(form_post(token), context)["statusCode"] == 202
    (message,) = stack.recovery_messages()
    return message


def _register_amended(stack: Stack, context: LambdaContext, fulfillment_url: Handler) -> str:
    """The same buyer registers again later, under an amended agreement; the registration id."""
    name = f"new-style-amended-{uuid.uuid4().hex[:8]}"
    original = next(c for c in stack.marketplace.customers if c.name == "new-style")
    stack.marketplace.add_customer(
        dataclasses.replace(original, name=name, agreement_id="agmt-amended0000000000000000")
    )
    response = fulfillment_url(form_post(stack.marketplace.issue_token(name)), context)
    assert response["statusCode"] == 303
    return parse_qs(urlsplit(response["headers"]["Location"]).query)["registration"][0]


def _registration_attributes(stack: Stack) -> dict[str, Any]:
    customer = stack.customer(CUSTOMER_PK)
    assert customer is not None
    names = ("registration_count", "agreement_id", "last_registered_at", "last_registration_id")
    return {name: customer[name] for name in names}


def test_recovery_processor_replayed_twice_counts_the_registration_once(
    stack: Stack,
    lambda_context: LambdaContext,
    capsys: pytest.CaptureFixture[str],
    fulfillment_url: Handler,
    clients: FunctionClients,
) -> None:
    # Given a parked registration (customer write failed)
    message = _park(stack, lambda_context, fulfillment_url, clients)
    capsys.readouterr()

    # When SQS delivers the same message twice (and a third time, for good measure)
    for _ in range(3):
        _replay(stack, message)

    # Then every delivery succeeds, and the customer is counted once
    assert stack.customer(CUSTOMER_PK)["registration_count"] == {"N": "1"}  # type: ignore[index]
    assert len(_sessions(stack)) == 1
    assert _metric_names(capsys.readouterr().out).count("RegistrationRecovered") == 1


def test_a_late_replay_after_a_newer_registration_moves_nothing_backwards(
    stack: Stack,
    fulfillment_url: Handler,
    clients: FunctionClients,
    lambda_context: LambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a parked registration that waits (a dead-letter redrive comes days later)
    message = _park(stack, lambda_context, fulfillment_url, clients)
    # And the buyer registers again meanwhile, under an amended agreement
    newer = _register_amended(stack, lambda_context, fulfillment_url)
    before = _registration_attributes(stack)
    assert before["last_registration_id"] == {"S": newer}
    assert before["agreement_id"] == {"S": "agmt-amended0000000000000000"}
    capsys.readouterr()

    # When the old registration is replayed at last
    _replay(stack, message)

    # Then the customer still shows the newer registration, counted once, nothing older
    assert _registration_attributes(stack) == before
    assert "RegistrationRecovered" not in _metric_names(capsys.readouterr().out)
    # And the old Continue link still finds its session
    parked = json.loads(message["Body"])
    assert f"SESSION#{parked['registration_id']}" in {s["pk"]["S"] for s in _sessions(stack)}


def test_a_duplicate_delivery_after_an_intervening_registration_counts_nothing_again(
    stack: Stack, lambda_context: LambdaContext, fulfillment_url: Handler, clients: FunctionClients
) -> None:
    # Given a parked registration replayed once, and a newer registration after it
    message = _park(stack, lambda_context, fulfillment_url, clients)
    _replay(stack, message)
    newer = _register_amended(stack, lambda_context, fulfillment_url)
    before = _registration_attributes(stack)
    assert before["registration_count"] == {"N": "2"}

    # When SQS delivers the old message again
    _replay(stack, message)

    # Then it is neither counted again nor does it move the customer back to itself
    assert _registration_attributes(stack) == before
    assert before["last_registration_id"] == {"S": newer}


def test_a_failed_replay_fails_its_own_invocation_so_sqs_delivers_it_again(
    stack: Stack, lambda_context: LambdaContext, fulfillment_url: Handler, clients: FunctionClients
) -> None:
    # Given two parked registrations (two customers)
    with failing(clients.dynamodb, SESSION_WRITES, table=stack.customers_table, times=100):
        for customer in ("new-style", "legacy"):
            token = stack.marketplace.issue_token(customer)
            assert fulfillment_url(form_post(token), lambda_context)["statusCode"] == 202
    messages = stack.recovery_messages()
    first = next(m for m in messages if "license-manager" in m["Body"])
    (second,) = [m for m in messages if m is not first]

    # When DynamoDB throttles every attempt of the first replay, and then recovers
    with (
        failing(clients.dynamodb, SESSION_WRITES, table=stack.customers_table, times=3),
        pytest.raises(StorageUnavailableError),
    ):
        _replay(stack, first)
    _replay(stack, second)

    # Then only the first invocation failed (SQS retries its message, then dead-letters it)
    assert stack.customer(CUSTOMER_PK) is None
    assert stack.customer(f"LEGACY#{PRODUCT}#Ab1Cd2Ef3Gh") is not None
    # And the redeliveries record it, without counting the other one twice
    _replay(stack, first)
    _replay(stack, second)
    assert stack.customer(CUSTOMER_PK)["registration_count"] == {"N": "1"}  # type: ignore[index]
    legacy = stack.customer(f"LEGACY#{PRODUCT}#Ab1Cd2Ef3Gh")
    assert legacy["registration_count"] == {"N": "1"}  # type: ignore[index]


def test_a_message_that_is_not_a_parked_registration_fails_and_its_body_is_not_logged(
    stack: Stack,
    function_logs: io.StringIO,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a message on the recovery queue that is not a parked registration (version 2)
    csrf = "csrf-value-only-in-the-body"
    stack.sqs.send_message(
        QueueUrl=stack.recovery_queue_url,
        MessageBody=json.dumps({"version": 2, "registration_id": "r-1", "csrf_token": csrf}),
    )
    (message,) = stack.recovery_messages()

    # When the processor receives it, its invocation fails (SQS retries, then dead-letters)
    with pytest.raises(MalformedParkedRegistrationError):
        _replay(stack, message)

    # Then nothing is written, and the log names the message, not what it holds
    assert stack.items() == []
    captured = all_logs(function_logs, caplog) + capsys.readouterr().out
    assert "recovery message is not a parked registration" in captured
    assert message["MessageId"] in captured
    assert csrf not in captured


def test_make_runs_recovery_poller_replays_each_parked_registration_in_its_own_invocation(
    stack: Stack,
    dynamodb_server: RunningDynamoDB,
    lambda_context: LambdaContext,
    fulfillment_url: Handler,
    clients: FunctionClients,
) -> None:
    # Given make run's recovery queue and processor (a spawned worker running the handler)
    local = start_local_recovery(
        endpoint_url=dynamodb_server.url,
        function_environment=local_function_environment(
            stack, AWS_ENDPOINT_URL_DYNAMODB=dynamodb_server.url
        ),
        region="us-east-1",
        prefix=f"local-{uuid.uuid4().hex[:8]}",
    )
    try:
        # And two registrations parked there (the customer write failed for both)
        with failing(clients.dynamodb, SESSION_WRITES, table=stack.customers_table, times=100):
            for customer in ("new-style", "legacy"):
                token = stack.marketplace.issue_token(customer)
                assert fulfillment_url(form_post(token), lambda_context)["statusCode"] == 202
        for message in stack.recovery_messages():
            stack.sqs.send_message(QueueUrl=local.queue_url, MessageBody=message["Body"])

        # When the poller has drained the queue
        deadline = time.monotonic() + 60
        while local.in_flight() and time.monotonic() < deadline:
            time.sleep(0.2)

        # Then both customers are recorded, one invocation per message, as the mapping does
        assert local.in_flight() == 0
        assert stack.customer(CUSTOMER_PK) is not None
        assert stack.customer(f"LEGACY#{PRODUCT}#Ab1Cd2Ef3Gh") is not None
        assert local.invocations == 2
        assert local.dead_letters() == []
    finally:
        local.stop()


@pytest.mark.handles_secrets(TOKEN)
def test_the_token_is_in_no_recovery_message_and_no_log_line_on_these_paths(
    stack: Stack,
    lambda_context: LambdaContext,
    function_logs: io.StringIO,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    fulfillment_url: Handler,
    clients: FunctionClients,
) -> None:
    # Given every recovery path: session write parked, customer write parked, both + SQS down
    tokens = [stack.marketplace.issue_token("new-style") for _ in range(3)]
    with failing(clients.dynamodb, SESSION_WRITES, table=stack.customers_table, times=10):
        fulfillment_url(form_post(tokens[0]), lambda_context)
    with failing(clients.dynamodb, "UpdateItem", table=stack.customers_table, times=10):
        fulfillment_url(form_post(tokens[1]), lambda_context)
    with (
        failing(clients.dynamodb, SESSION_WRITES, table=stack.customers_table, times=10),
        failing(clients.sqs, "SendMessage", times=10, timeout=True),
    ):
        fulfillment_url(form_post(tokens[2]), lambda_context)
    # And the processor replaying what was parked, twice
    messages = stack.recovery_messages()
    assert len(messages) == 2
    for _ in range(2):
        for message in messages:
            _replay(stack, message)

    # Then no message, log line (any level), metric or stored item holds any token
    captured = all_logs(function_logs, caplog) + capsys.readouterr().out
    bodies = json.dumps([m["Body"] for m in messages])
    stored = json.dumps(stack.items()) + json.dumps(stack.items(stack.idempotency_table))
    assert "parked on the recovery queue" in captured  # the paths really were taken
    assert "parked registration recorded" in captured
    for token in tokens:
        assert token not in captured
        assert token not in bodies
        assert token not in stored
    # Nor the registration ids (they open the sign-up page) in any log line
    for message in messages:
        assert json.loads(message["Body"])["registration_id"] not in captured


@pytest.mark.parametrize(
    ("field", "value", "error_code"),
    [
        ("customer_aws_account_id", "", "MissingAccountId"),
        ("license_arn", "arn:aws:iam::111122223333:role/not-a-license", "InvalidLicenseArn"),
    ],
)
def test_a_registration_parked_that_cannot_key_a_customer_is_dropped_once_not_retried(
    stack: Stack,
    lambda_context: LambdaContext,
    fulfillment_url: Handler,
    clients: FunctionClients,
    function_logs: io.StringIO,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    field: str,
    value: str,
    error_code: str,
) -> None:
    # Given a message parked before the fulfillment URL refused such answers (without
    # CustomerAWSAccountId, or with a LicenseArn that is no license's): no replay could ever
    # write it (an empty string in an indexed attribute; no key made of the ARN)
    message = _park(stack, lambda_context, fulfillment_url, clients)
    stack.dynamodb.delete_item(
        TableName=stack.customers_table, Key={"pk": {"S": CUSTOMER_PK}, "sk": {"S": "CUSTOMER"}}
    )
    body = json.loads(message["Body"])
    message = {**message, "Body": json.dumps({**body, field: value})}
    capsys.readouterr()

    # When SQS delivers it
    _replay(stack, message)

    # Then the invocation succeeds (SQS deletes the message: no retries, no dead letter),
    # nothing is written, and the drop is logged at ERROR and counted as the refusal it is
    assert stack.customer(CUSTOMER_PK) is None
    logs = all_logs(function_logs, caplog)
    assert "can never be stored" in logs and '"level":"ERROR"' in logs.replace(" ", "")
    assert error_code in _error_codes(capsys.readouterr().out)
