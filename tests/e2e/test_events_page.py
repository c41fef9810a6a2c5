"""The local stack publishes registration events and shows them on its events page."""

from __future__ import annotations

import time
import urllib.request
from urllib.parse import urlencode

from local.marketplace import MarketplaceStandIn
from local.run import LocalStack


def _post_token(stack: LocalStack, token: str) -> int:
    request = urllib.request.Request(
        stack.fulfillment_url,
        data=urlencode({"x-amzn-marketplace-token": token}).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
    )

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_a_registration_appears_on_the_events_page(
    stack: LocalStack, marketplace: MarketplaceStandIn
) -> None:
    # Given the local stack publishes its customers table's changes
    assert stack.events is not None
    before = len(stack.events.published())

    # When a buyer registers
    assert _post_token(stack, marketplace.issue_token("new-style")) == 303

    # Then a Customer Registered event is published within a few seconds, without contact data
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(stack.events.published()) <= before:
        time.sleep(0.2)
    new = stack.events.published()[before:] if len(stack.events.published()) > before else []
    assert any(e.get("detail-type") == "Customer Registered" for e in new), new
    with urllib.request.urlopen(stack.url + "/_local/events", timeout=10) as page:
        body = page.read().decode()
    assert "Customer Registered" in body
    assert "111122223333" in body
