"""The local stack over plain HTTP: the function behind the gateway, moto and the stand-in."""

from __future__ import annotations

import http.client
import json
import threading
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest

from fulfillment.customers.models import license_key
from local.marketplace import MarketplaceStandIn, default_customers
from local.run import LocalStack
from tests.e2e.conftest import PRODUCT_CODE

CUSTOMERS = {c.name: c for c in default_customers(PRODUCT_CODE)}
NEW_STYLE = CUSTOMERS["new-style"]
TOKEN_FIELD = "x-amzn-marketplace-token"
OFFER_FIELD = "x-amzn-marketplace-offer-type"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: str

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


def request(
    url: str, method: str = "GET", body: str | None = None, headers: dict[str, str] | None = None
) -> Answer:
    """One request to the loopback stack; redirects are returned, never followed."""
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1"
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request(method, path or "/", body=body, headers=headers or {})
        response = connection.getresponse()
        return Answer(
            response.status,
            {name.lower(): value for name, value in response.getheaders()},
            response.read().decode("utf-8"),
        )
    finally:
        connection.close()


def submit(stack: LocalStack, token: str, *, free_trial: bool = False) -> Answer:
    """What the buyer's browser does after "Set up your account": a form POST."""
    fields = [(TOKEN_FIELD, token)]
    if free_trial:
        fields.append((OFFER_FIELD, "free-trial"))
    return request(
        stack.fulfillment_url,
        "POST",
        body=urlencode(fields),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


def registration_id(location: str) -> str:
    return parse_qs(urlsplit(location).query)["registration"][0]


def all_items(stack: LocalStack, table: str) -> list[dict[str, Any]]:
    client = stack.dynamodb_client()
    items: list[dict[str, Any]] = []
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        items.extend(page["Items"])
    return items


def customer_item(stack: LocalStack, pk: str) -> dict[str, Any] | None:
    answer = stack.dynamodb_client().get_item(
        TableName=stack.customers_table,
        Key={"pk": {"S": pk}, "sk": {"S": "CUSTOMER"}},
        ConsistentRead=True,
    )
    item: dict[str, Any] | None = answer.get("Item")
    return item


class _FormsAndLinks(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, str | None]] = []
        self.inputs: list[dict[str, str | None]] = []
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form":
            self.forms.append(attributes)
        elif tag == "input":
            self.inputs.append(attributes)
        if attributes.get("href"):
            self.hrefs.append(str(attributes["href"]))


def parse(body: str) -> _FormsAndLinks:
    parser = _FormsAndLinks()
    parser.feed(body)
    return parser


# --------------------------------------------------------------------------- tests


def test_landing_page_is_html_with_security_headers(stack: LocalStack) -> None:
    answer = request(stack.fulfillment_url)

    assert answer.status == 200
    assert answer.header("Content-Type").startswith("text/html")
    assert "default-src 'none'" in answer.header("Content-Security-Policy")
    assert answer.header("X-Content-Type-Options") == "nosniff"
    assert answer.header("Referrer-Policy") == "no-referrer"
    assert answer.header("Cache-Control") == "no-store"
    assert answer.header("Strict-Transport-Security").startswith("max-age=")
    assert "Set up your account" in answer.body


def test_function_receives_every_settings_variable(stack: LocalStack) -> None:
    from tests.functions import ENVIRONMENT_KEYS as FUNCTION_ENVIRONMENT_KEYS

    # Variables with a default (or optional ones) pass through only when set; this stack runs
    # the product default, the built-in sign-up page (REGISTRATION_URL unset).
    optional = {
        "MARKETPLACE_REGION",
        "SESSION_TTL_SECONDS",
        "REGISTRATION_URL",
        "SIGNUP_COMPLETE_URL",
    }
    from local.run import HANDLER, ROUTES

    # Every function the gateway serves gets its variables.
    served = {HANDLER} | {route.handler for route in ROUTES if route.handler}
    assert served >= {"fulfillment.api.lambda_handler", "fulfillment.signup.handler.lambda_handler"}
    for handler in served:
        assert FUNCTION_ENVIRONMENT_KEYS[handler] - set(stack.function_environment) <= optional
    assert "REGISTRATION_URL" not in stack.function_environment
    assert stack.registration_url is None


def test_registration_hands_over_an_id_and_stores_the_customer(
    stack: LocalStack, marketplace: MarketplaceStandIn
) -> None:
    # Given a fresh token for a new-style buyer
    token = marketplace.issue_token("new-style")

    # When the browser posts it to the fulfillment URL
    answer = submit(stack, token)

    # Then it is sent on to the built-in sign-up page with an opaque id only
    assert answer.status == 303
    location = answer.header("Location")
    assert location.startswith("/local/signup?registration=")
    assert len(registration_id(location)) >= 22
    for secret in (token, quote(token, safe=""), NEW_STYLE.customer_aws_account_id):
        assert secret not in location

    # And the customer is recorded once, keyed by license, without the token anywhere
    item = customer_item(stack, license_key(NEW_STYLE.license_arn))
    assert item is not None
    assert item["registration_count"] == {"N": "1"}
    assert item["customer_aws_account_id"] == {"S": NEW_STYLE.customer_aws_account_id}
    assert item["product_code"] == {"S": PRODUCT_CODE}
    for table in (stack.customers_table, stack.idempotency_table, stack.contacts_table):
        assert token not in json.dumps(all_items(stack, table))

    # And the sign-up page shows the form for that registration
    page = request(stack.url + location)
    assert page.status == 200
    assert "Set up your account" in page.body
    assert f'name="registration" value="{registration_id(location)}"' in page.body
    assert NEW_STYLE.customer_aws_account_id not in page.body

    # When the same token is submitted again
    again = submit(stack, token)

    # Then the answer is replayed and Marketplace was asked only once
    assert again.status == 303
    assert again.header("Location") == location
    assert marketplace.resolve_calls_for(token) == 1
    item = customer_item(stack, license_key(NEW_STYLE.license_arn))
    assert item is not None
    assert item["registration_count"] == {"N": "1"}


def test_free_trial_buyer_goes_to_the_trial_registration_url(
    stack: LocalStack, marketplace: MarketplaceStandIn
) -> None:
    token = marketplace.issue_token("free-trial")

    answer = submit(stack, token, free_trial=True)

    assert answer.status == 303
    location = answer.header("Location")
    assert location.startswith(stack.trial_registration_url + "&registration=")
    page = request(location)
    assert page.status == 200
    assert 'data-field="offer">free-trial<' in page.body


def test_legacy_buyer_is_keyed_by_product_and_customer_identifier(
    stack: LocalStack, marketplace: MarketplaceStandIn
) -> None:
    legacy = CUSTOMERS["legacy"]
    token = marketplace.issue_token("legacy")

    answer = submit(stack, token)

    assert answer.status == 303
    item = customer_item(stack, f"LEGACY#{PRODUCT_CODE}#{legacy.customer_identifier}")
    assert item is not None
    assert item["customer_identifier"] == {"S": legacy.customer_identifier}
    page = request(stack.url + answer.header("Location"))
    assert page.status == 200
    assert 'name="csrf_token"' in page.body


def test_expired_token_asks_the_buyer_to_start_again(
    stack: LocalStack, marketplace: MarketplaceStandIn
) -> None:
    marketplace.set_expire_after(0)
    token = marketplace.issue_token("new-style")

    answer = submit(stack, token)

    assert answer.status == 400
    assert "Set up your account" in answer.body
    assert token not in answer.body
    assert all_items(stack, stack.customers_table) == []


def test_token_for_another_product_is_refused_and_nothing_is_stored(
    stack: LocalStack, marketplace: MarketplaceStandIn
) -> None:
    token = marketplace.issue_token("other-product")

    answer = submit(stack, token)

    assert answer.status == 403
    assert all_items(stack, stack.customers_table) == []
    assert token not in answer.body


def test_throttled_marketplace_offers_a_retry_form_without_the_token_in_links(
    stack: LocalStack, marketplace: MarketplaceStandIn
) -> None:
    # Given Marketplace throttles more calls than the function retries
    marketplace.throttle_next(10)
    token = marketplace.issue_token("new-style")

    # When the buyer submits
    answer = submit(stack, token)

    # Then they may try again: a POST form carrying the token, never a link with it
    assert answer.status == 503
    assert answer.header("Retry-After").isdigit()
    parsed = parse(answer.body)
    assert [(form.get("method") or "").lower() for form in parsed.forms] == ["post"]
    hidden = [i for i in parsed.inputs if i.get("name") == TOKEN_FIELD]
    assert len(hidden) == 1
    assert hidden[0].get("type") == "hidden"
    assert hidden[0].get("value") == token
    for href in parsed.hrefs:
        assert token not in href
        assert quote(token, safe="") not in href
    assert all_items(stack, stack.customers_table) == []

    # And once Marketplace recovers, the same token registers
    marketplace.throttle_next(0)
    assert submit(stack, token).status == 303


def test_concurrent_submissions_of_one_token_register_once(
    stack: LocalStack, marketplace: MarketplaceStandIn
) -> None:
    # Given a slow Marketplace, so that eight submissions overlap
    marketplace.set_latency(0.5)
    token = marketplace.issue_token("new-style")
    answers: list[Answer] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def one() -> None:
        start.wait()
        try:
            answer = submit(stack, token)
        except BaseException as exc:
            with lock:
                errors.append(exc)
            return
        with lock:
            answers.append(answer)

    # When they all arrive at once
    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # Then none failed, each was sent on (or asked to wait), and all to the same place
    assert errors == []
    assert len(answers) == 8
    assert all(a.status < 500 for a in answers), [a.status for a in answers]
    redirects = {a.header("Location") for a in answers if a.status == 303}
    assert len(redirects) == 1
    for answer in answers:
        if answer.status != 303:
            assert answer.status == 409
            assert "still being set up" in answer.body

    # And Marketplace was asked once, and one customer and one session exist
    assert marketplace.resolve_calls_for(token) == 1
    items = all_items(stack, stack.customers_table)
    customers = [i for i in items if i["sk"] == {"S": "CUSTOMER"}]
    sessions = [i for i in items if i["sk"] == {"S": "SESSION"}]
    assert len(customers) == 1
    assert customers[0]["registration_count"] == {"N": "1"}
    assert len(sessions) == 1


@pytest.mark.parametrize("registration", ["", "not-a-session-id-at-all-xxxxxx", "<script>"])
def test_registration_page_rejects_unknown_ids(stack: LocalStack, registration: str) -> None:
    answer = request(f"{stack.standin_registration_url}?registration={quote(registration)}")

    assert answer.status == 404
    assert "unknown or expired registration" in answer.body.lower()
    assert "<script>" not in answer.body


def test_local_index_and_marketplace_redirect(stack: LocalStack) -> None:
    index = request(stack.index_url)
    assert index.status == 200
    assert "default-src 'none'" in index.header("Content-Security-Policy")
    assert f'href="{stack.marketplace_page_url}"' in index.body
    assert 'id="signup-flow-link"' in index.body
    assert f"the built-in sign-up page, {stack.signup_url}?registration=" in index.body

    redirect = request(stack.url + "/_local/marketplace")
    assert redirect.status == 303
    assert redirect.header("Location") == stack.marketplace_page_url
