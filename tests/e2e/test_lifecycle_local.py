"""Subscription lifecycle on the local stack: Marketplace page -> local queue -> the real function.

Statuses are the contract of issue 5: pending, subscribed, subscribe-failed, unsubscribe-pending,
unsubscribed, deprovisioned.
"""

from __future__ import annotations

import http.client
import importlib.util
import time
import urllib.request
from urllib.parse import urlencode, urlsplit

import pytest

from fulfillment.customers.models import license_key
from local.lifecycle import customer_key
from local.marketplace import MarketplaceStandIn
from local.run import LAMBDA_ROOT, LocalStack

pytestmark = pytest.mark.skipif(
    not (LAMBDA_ROOT / "fulfillment" / "lifecycle.py").is_file()
    and importlib.util.find_spec("fulfillment.lifecycle") is None,
    reason="fulfillment.lifecycle (issue 5) is not in this tree yet",
)

CUSTOMER = "new-style"
LICENSE_ARN = "arn:aws:license-manager::111122223333:license:l-0123456789abcdef0123456789abcdef"


def _press(marketplace_url: str, customer: str, action: str) -> None:
    """Press a lifecycle button on the Marketplace page (a form POST, then its redirect)."""
    parts = urlsplit(marketplace_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request(
            "POST",
            "/marketplace/lifecycle",
            urlencode({"customer": customer, "action": action}),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        response = connection.getresponse()
        response.read()
        assert (response.status, response.getheader("Location")) == (303, "/marketplace")
    finally:
        connection.close()


def _status(stack: LocalStack, marketplace: MarketplaceStandIn) -> str | None:
    customer = next(c for c in marketplace.customers if c.name == CUSTOMER)
    item = (
        stack.dynamodb_client()
        .get_item(TableName=stack.customers_table, Key=customer_key(customer), ConsistentRead=True)
        .get("Item")
    )
    return (item or {}).get("status", {}).get("S")


def _settled(stack: LocalStack, marketplace: MarketplaceStandIn, wanted: set[str]) -> str | None:
    """The status once it is one of ``wanted`` and the queue is drained (or after 30 s)."""
    deadline = time.monotonic() + 30
    status = None
    while time.monotonic() < deadline:
        status = _status(stack, marketplace)
        if status in wanted and _queue_empty(stack):
            return status
        time.sleep(0.2)
    return status


def _queue_empty(stack: LocalStack) -> bool:
    assert stack.lifecycle is not None
    return stack.lifecycle.in_flight() == 0


def _page(stack: LocalStack) -> str:
    assert stack.marketplace_page_url is not None
    with urllib.request.urlopen(stack.marketplace_page_url, timeout=10) as response:
        return response.read().decode()


def test_subscribe_before_registration_then_register_then_unsubscribe_stays(
    stack: LocalStack, marketplace: MarketplaceStandIn
) -> None:
    assert stack.lifecycle is not None and stack.marketplace_page_url is not None
    marketplace_url = stack.marketplace_url

    # Given a buyer who subscribed but has not reached the fulfillment URL yet
    _press(marketplace_url, CUSTOMER, "subscribe")

    # Then the customer exists, pending or subscribed, in DynamoDB and on the Marketplace page
    status = _settled(stack, marketplace, {"pending", "subscribed"})
    assert status in {"pending", "subscribed"}
    assert f'data-customer="{CUSTOMER}">{status}</strong>' in _page(stack)

    # When the buyer registers through the fulfillment URL
    token = marketplace.issue_token(CUSTOMER)
    parts = urlsplit(stack.fulfillment_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.request(
        "POST",
        "/",
        urlencode({"x-amzn-marketplace-token": token}),
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert connection.getresponse().status == 303
    connection.close()

    # Then the same item carries both the registration and the lifecycle state
    items = stack.dynamodb_client().scan(TableName=stack.customers_table)["Items"]
    customers = [i for i in items if i["sk"]["S"] == "CUSTOMER"]
    assert [c["pk"]["S"] for c in customers] == [license_key(LICENSE_ARN)]
    assert customers[0]["registration_count"]["N"] == "1"
    assert customers[0]["status"]["S"] in {"pending", "subscribed"}

    # When the buyer unsubscribes, and then an older subscribe arrives late (and a duplicate)
    _press(marketplace_url, CUSTOMER, "unsubscribe")
    assert _settled(stack, marketplace, {"unsubscribed"}) == "unsubscribed"
    _press(marketplace_url, CUSTOMER, "out-of-order")
    _press(marketplace_url, CUSTOMER, "duplicate")

    # Then the status never moves backwards
    time.sleep(1)
    assert _settled(stack, marketplace, {"unsubscribed"}) == "unsubscribed"
    assert f'data-customer="{CUSTOMER}">unsubscribed</strong>' in _page(stack)
    assert stack.lifecycle.dead_letters() == []


def test_a_free_trial_buyer_subscribing_on_the_local_stack_is_recorded_as_a_trial(
    stack: LocalStack, marketplace: MarketplaceStandIn
) -> None:
    marketplace_url = stack.marketplace_url
    trial = next(c for c in marketplace.customers if c.name == "free-trial")

    # When the trial buyer subscribes on the Marketplace page
    _press(marketplace_url, trial.name, "subscribe")

    # Then the local lifecycle function read the agreement's terms from the stand-in
    deadline, item = time.monotonic() + 30, None
    while time.monotonic() < deadline:
        item = (
            stack.dynamodb_client()
            .get_item(TableName=stack.customers_table, Key=customer_key(trial), ConsistentRead=True)
            .get("Item")
        )
        if item and "free_trial" in item and _queue_empty(stack):
            break
        time.sleep(0.2)
    assert item is not None and item.get("free_trial") == {"BOOL": True}, item
    assert marketplace.terms_calls >= 1
    assert stack.lifecycle is not None and stack.lifecycle.dead_letters() == []
