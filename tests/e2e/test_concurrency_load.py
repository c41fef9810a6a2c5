"""Many submissions at once against a local stack of its own, with eight function workers.

Each worker is a separate process, like a Lambda execution environment, so the race on one
token happens where it does in production: in DynamoDB (moto behind one lock, atomic per item
as DynamoDB is). The full load run (500 buyers) is `make bench`; here a small one checks that
its client and its checks work.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from bench.load import LoadSettings, measure
from local.run import LocalStack
from tests.e2e.conftest import PRODUCT_CODE, running_stack

SUBMISSIONS = 50
WORKERS = 8
CLIENT_TIMEOUT_SECONDS = 20
# Long enough for all fifty submissions to arrive while the first is still resolving.
MARKETPLACE_LATENCY_SECONDS = 1.0

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with running_stack(
        {"PRODUCT_CODES": PRODUCT_CODE, "POWERTOOLS_LOG_LEVEL": "WARNING"}, workers=WORKERS
    ) as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh_state() -> None:
    """Overrides the package's: this module's stack is its own, not the shared one."""


@dataclass(frozen=True)
class Answer:
    status: int
    location: str
    body: str


def submit(stack: LocalStack, token: str) -> Answer:
    """The buyer's browser after "Set up your account" (or "Try again"): a form POST."""
    parts = urlsplit(stack.fulfillment_url)
    assert parts.hostname == "127.0.0.1"
    connection = http.client.HTTPConnection(
        parts.hostname, parts.port, timeout=CLIENT_TIMEOUT_SECONDS
    )
    try:
        connection.request(
            "POST",
            parts.path,
            urlencode({"x-amzn-marketplace-token": token}),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        response = connection.getresponse()
        body = response.read().decode("utf-8")
        return Answer(response.status, response.getheader("Location") or "", body)
    finally:
        connection.close()


def customer_table(stack: LocalStack) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    paginator = stack.dynamodb_client().get_paginator("scan")
    for page in paginator.paginate(TableName=stack.customers_table, ConsistentRead=True):
        items.extend(page["Items"])
    return items


def test_fifty_concurrent_submissions_of_one_token_register_once(stack: LocalStack) -> None:
    # Given a new-style buyer's token and a Marketplace slow enough for every submission to
    # arrive while the first one is still being resolved
    marketplace = stack.marketplace
    assert marketplace is not None
    marketplace.reset()
    marketplace.set_latency(MARKETPLACE_LATENCY_SECONDS)
    token = marketplace.issue_token("new-style")
    before = {i["pk"]["S"] for i in customer_table(stack) if i["sk"]["S"] == "CUSTOMER"}
    answers: list[Answer] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(SUBMISSIONS)

    def one() -> None:
        start.wait(timeout=CLIENT_TIMEOUT_SECONDS)
        try:
            answer = submit(stack, token)
        except BaseException as exc:
            with lock:
                errors.append(exc)
            return
        with lock:
            answers.append(answer)

    # When fifty clients submit it at the same instant
    started = time.monotonic()
    threads = [threading.Thread(target=one) for _ in range(SUBMISSIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=CLIENT_TIMEOUT_SECONDS + 10)
    elapsed = time.monotonic() - started
    marketplace.set_latency(0)

    # Then every one got an answer, none a 5xx: sent on to one place, or asked to wait
    assert errors == []
    assert len(answers) == SUBMISSIONS, f"{len(answers)} answers in {elapsed:.1f} s"
    statuses = sorted(a.status for a in answers)
    assert set(statuses) <= {303, 409}, statuses
    locations = {a.location for a in answers if a.status == 303}
    assert len(locations) == 1, statuses
    for answer in answers:
        if answer.status == 409:
            assert "still being set up" in answer.body
            assert 'name="x-amzn-marketplace-token"' in answer.body

    # And Marketplace was asked once; one customer and one sign-up session exist
    assert marketplace.resolve_calls_for(token) == 1
    items = customer_table(stack)
    customers = [i for i in items if i["sk"]["S"] == "CUSTOMER" and i["pk"]["S"] not in before]
    assert len(customers) == 1
    assert customers[0]["registration_count"] == {"N": "1"}
    sessions = [i for i in items if i["sk"]["S"] == "SESSION"]
    assert [s["customer_pk"]["S"] for s in sessions].count(customers[0]["pk"]["S"]) == 1

    # When a buyer who was asked to wait chooses "Try again"
    again = submit(stack, token)

    # Then they are sent where the first one went, still without a second ResolveCustomer
    assert again.status == 303
    assert again.location in locations
    assert marketplace.resolve_calls_for(token) == 1


def test_small_load_run_stores_every_buyer_exactly_once(stack: LocalStack) -> None:
    # Given a Marketplace that throttles often, so some registrations reach the buyer as 503
    settings = LoadSettings(
        tokens=16,
        clients=8,
        throttle_rate=0.5,
        seed=11,
        max_resubmits=8,
        resubmit_pause_seconds=0.1,
        max_requests=200,
        max_seconds=45,
        request_timeout_seconds=CLIENT_TIMEOUT_SECONDS,
    )

    # When the load run's clients register sixteen distinct buyers
    result = measure(stack, settings)

    # Then its own checks pass: each buyer stored once with one session, nobody lost
    assert result.problems == []
    assert len(result.stored.registration_counts) == 16
    assert set(result.stored.registration_counts.values()) == {1}
    assert all(result.stored.sessions[pk] == 1 for pk in result.stored.registration_counts)
    assert all(r.registered for r in result.registrations)
    # And throttling really happened, and every extra call was a throttled one
    assert result.resolve_answers.get("ThrottlingException", 0) > 0
    assert result.resolve_answers["ok"] == 16
    assert result.resolve_calls == sum(result.resolve_answers.values())
    statuses = {e.status for e in result.exchanges}
    assert statuses <= {303, 503}, statuses
