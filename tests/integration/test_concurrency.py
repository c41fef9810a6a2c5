"""Concurrent submissions of one token through the gateway's worker processes.

Each worker is a separate process with its own Powertools state, like Lambda execution
environments, so the race happens where it does in production: in DynamoDB.
"""

from __future__ import annotations

import http.client
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

from local.gateway import Route, RunningGateway, start_gateway
from tests.integration.conftest import Stack

CLIENTS = 16


@pytest.fixture
def gateway(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningGateway]:
    environment = {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "POWERTOOLS_"))}
    for name in (
        "CUSTOMERS_TABLE_NAME",
        "IDEMPOTENCY_TABLE_NAME",
        "PRODUCT_CODES",
        "REGISTRATION_URL",
        "TRIAL_REGISTRATION_URL",
        "MARKETPLACE_REGION",
        "SESSION_TTL_SECONDS",
    ):
        environment[name] = os.environ[name]
    environment["POWERTOOLS_LOG_LEVEL"] = "WARNING"
    running = start_gateway(
        handler="fulfillment.api.lambda_handler",
        routes=[Route("GET", "/"), Route("POST", "/")],
        port=0,
        workers=4,
        environment=environment,
        extra_sys_path=[str(Path("lambda").resolve())],
    )
    running.warm_up()
    yield running
    running.stop()


def _post(url: str, token: str) -> tuple[int, str]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    body = urlencode({"x-amzn-marketplace-token": token})
    connection.request("POST", "/", body, {"Content-Type": "application/x-www-form-urlencoded"})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response.status, response.getheader("Location") or ""


def test_concurrent_submissions_of_one_token_register_once(
    stack: Stack, gateway: RunningGateway
) -> None:
    # Given a token whose resolution is slow enough for every submission to overlap
    stack.marketplace.set_latency(0.5)
    token = stack.marketplace.issue_token("new-style")

    # When 16 clients submit it at once
    with ThreadPoolExecutor(CLIENTS) as pool:
        answers = list(pool.map(lambda _: _post(gateway.url, token), range(CLIENTS)))

    # Then there is one ResolveCustomer call, one customer, one session and no 5xx
    statuses = [status for status, _ in answers]
    assert all(status in (303, 409) for status in statuses), statuses
    assert statuses.count(303) >= 1
    assert len({location for status, location in answers if status == 303}) == 1
    assert stack.marketplace.resolve_calls_for(token) == 1
    items = stack.items()
    assert [i["sk"]["S"] for i in items].count("CUSTOMER") == 1
    assert [i["sk"]["S"] for i in items].count("SESSION") == 1
    customer = next(i for i in items if i["sk"]["S"] == "CUSTOMER")
    assert customer["registration_count"] == {"N": "1"}
