"""`REGISTRATION_URL=/_local/registration make run`: the seller's own site, no built-in sign-up.

Its own local stack (the shared one runs the built-in page), over plain HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import pytest

from fulfillment.contract import GATEWAY_PAGE_CSP, SECURITY_HEADERS
from local.run import LocalStack
from tests.e2e.conftest import PRODUCT_CODE, running_stack
from tests.e2e.test_local_stack_http import all_items, registration_id, request, submit


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    own_site = {"PRODUCT_CODES": PRODUCT_CODE, "REGISTRATION_URL": "/_local/registration"}
    with running_stack(own_site, workers=1) as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh_state() -> None:
    """Overrides the package's: this module's stack is its own, not the shared one."""


def test_with_the_sellers_own_site_the_built_in_sign_up_answers_404(stack: LocalStack) -> None:
    # Given a buyer handed over to the seller's own site
    assert stack.marketplace is not None
    answer = submit(stack, stack.marketplace.issue_token("new-style"))
    assert answer.status == 303
    location = answer.header("Location")
    assert location.startswith(stack.standin_registration_url + "?registration=")
    registration = registration_id(location)
    (session,) = [
        item
        for item in all_items(stack, stack.customers_table)
        if item["pk"]["S"] == f"SESSION#{registration}"
    ]
    form = {
        "registration": registration,
        "csrf_token": session["csrf_token"]["S"],
        "company": "Own Site Widgets",
        "contact_name": "Ada Example",
        "email": "ada@widgets.example",
    }

    # When anyone holding the id tries the built-in sign-up page, with or without the stage
    for path in ("/signup", "/local/signup"):
        page = request(f"{stack.url}{path}?registration={registration}")
        posted = request(
            f"{stack.url}{path}",
            "POST",
            body=urlencode(form),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )

        # Then it is not there: 404, a page with the security headers, no form
        for answer in (page, posted):
            assert answer.status == 404, path
            assert answer.header("Content-Security-Policy") == GATEWAY_PAGE_CSP
            assert all(answer.header(k) == v for k, v in SECURITY_HEADERS.items())
            assert "<form" not in answer.body
    # And nothing was written: no contact, the session is still open
    assert all_items(stack, stack.contacts_table) == []
    assert [
        item
        for item in all_items(stack, stack.customers_table)
        if "signed_up_at" in item or item.get("completed", {}).get("BOOL")
    ] == []
