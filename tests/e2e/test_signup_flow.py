"""The built-in sign-up page in headless Chromium: Marketplace -> fulfillment URL -> sign-up.

The e2e stack runs the product default (no REGISTRATION_URL), so "Set up your account" lands
on the function's own sign-up form.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from fulfillment.core.ids import new_csrf_token, new_session_id
from fulfillment.core.redirects import registration_location
from fulfillment.customers.models import ParkedRegistration, license_key
from local.event_sources import local_session
from local.marketplace import default_customers
from local.run import LOCAL_REGION, LocalStack
from tests.e2e.conftest import PRODUCT_CODE

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

pytestmark = pytest.mark.browser

NEW_STYLE = {c.name: c for c in default_customers(PRODUCT_CODE)}["new-style"]
CUSTOMER_PK = license_key(NEW_STYLE.license_arn)
CONFIRMATION = "Thank you, your account is set up"
MOBILE = {"width": 390, "height": 844}


@pytest.fixture
def new_page(browser: Browser, stack: LocalStack) -> Iterator[Callable[..., Page]]:
    """Pages in fresh contexts that may reach the local stack only (no internet here)."""
    contexts: list[BrowserContext] = []
    outside: list[str] = []
    local_origins = (stack.url, stack.marketplace_url)

    def route(route: Any) -> None:
        if route.request.url.startswith(local_origins):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    def open_page(**options: Any) -> Page:
        context = browser.new_context(**options)
        context.route("**/*", route)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()
    # The pages are self-contained: nothing was requested from anywhere else.
    assert outside == []


def _set_up_account(page: Page, stack: LocalStack) -> None:
    """From the Marketplace page, choose "Set up your account" as the new-style buyer."""
    assert stack.marketplace_page_url is not None
    page.goto(stack.marketplace_page_url)
    form = page.locator('[data-customer="new-style"]')
    with page.expect_navigation(url="**/signup?registration=*"):
        form.get_by_role("button", name="Set up your account").click()


def _contact_items(stack: LocalStack) -> list[dict[str, Any]]:
    answer = stack.dynamodb_client().get_item(
        TableName=stack.contacts_table,
        Key={"pk": {"S": CUSTOMER_PK}},
        ConsistentRead=True,
    )
    return [answer["Item"]] if "Item" in answer else []


def _focused_id(page: Page) -> str:
    return str(page.evaluate("document.activeElement && document.activeElement.id"))


def test_buyer_signs_up_from_marketplace_to_confirmation(
    new_page: Callable[..., Page], stack: LocalStack, tmp_path: Path
) -> None:
    page = new_page()

    # Given the buyer chose "Set up your account" on the Marketplace page
    _set_up_account(page, stack)

    # Then they land on the built-in sign-up form
    assert page.locator("h1").inner_text() == "Set up your account"
    page.screenshot(path=str(tmp_path / "signup-form.png"), full_page=True)

    # When they fill it in and submit
    page.get_by_label("Company").fill("Example Corp")
    page.get_by_label("Contact name").fill("Jane Buyer")
    page.get_by_label("Email address").fill("jane.buyer@example.com")
    page.get_by_label("Phone number (optional)").fill("+1 555 010 0000")
    page.get_by_label("Team size (optional)").fill("12")
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Complete sign-up").click()

    # Then they see the confirmation, and the details are stored apart from the customer
    assert navigation.value is not None and navigation.value.status == 200
    assert page.locator("h1").inner_text() == CONFIRMATION
    page.screenshot(path=str(tmp_path / "signup-confirmation.png"), full_page=True)
    (contact,) = _contact_items(stack)
    assert contact["email"] == {"S": "jane.buyer@example.com"}
    assert contact["extra"] == {"M": {"team_size": {"S": "12"}}}
    customers = stack.dynamodb_client().scan(TableName=stack.customers_table)["Items"]
    assert "jane.buyer@example.com" not in json.dumps(customers)

    # When they go back to the form (pages are no-store, so the browser asks again)
    page.go_back()

    # Then they are told it is done, with no form to send twice, and nothing was duplicated
    assert page.locator("h1").inner_text() == "Your sign-up is complete"
    assert page.locator("form").count() == 0
    assert _contact_items(stack) == [contact]


def test_sign_up_can_be_completed_with_the_keyboard_only(
    new_page: Callable[..., Page], stack: LocalStack
) -> None:
    assert stack.marketplace_page_url is not None
    page = new_page()
    keyboard = page.keyboard

    # Given the Marketplace page, reached by keyboard: Tab to the new-style buyer's button
    page.goto(stack.marketplace_page_url)
    for _ in range(30):
        keyboard.press("Tab")
        if page.evaluate(
            "!!document.activeElement.closest('[data-customer=\"new-style\"]')"
            " && document.activeElement.tagName === 'BUTTON'"
        ):
            break
    else:
        pytest.fail("the Set up your account button is not reachable with Tab")
    with page.expect_navigation(url="**/signup?registration=*"):
        keyboard.press("Enter")

    # When the buyer tabs through the form in its natural order and types
    order = []
    for text in ("Example Corp", "Jane Buyer", "jane@example.com", "+44 20 7946 0000", "5"):
        keyboard.press("Tab")
        order.append(_focused_id(page))
        keyboard.type(text)
    keyboard.press("Tab")
    order.append(page.evaluate("document.activeElement.textContent"))
    with page.expect_navigation():
        keyboard.press("Enter")

    # Then focus went field by field to the button, and the sign-up is complete
    assert order == ["company", "contact_name", "email", "phone", "team_size", "Complete sign-up"]
    assert page.locator("h1").inner_text() == CONFIRMATION
    (contact,) = _contact_items(stack)
    assert contact["phone"] == {"S": "+44 20 7946 0000"}


def test_invalid_email_is_tied_to_its_field_and_the_summary_takes_focus(
    new_page: Callable[..., Page], stack: LocalStack, tmp_path: Path
) -> None:
    page = new_page(viewport=MOBILE, is_mobile=True, has_touch=True)
    _set_up_account(page, stack)
    page.screenshot(path=str(tmp_path / "mobile-form.png"), full_page=True)
    # The form fits the phone's width: nothing scrolls sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= MOBILE["width"]

    # When the buyer submits a mistyped email
    page.get_by_label("Company").fill("Example <b>Corp</b>")
    page.get_by_label("Contact name").fill("Jane Buyer")
    page.get_by_label("Email address").fill("jane.buyer@example")
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Complete sign-up").click()

    # Then the form comes back (400) with the summary focused and announced
    assert navigation.value is not None and navigation.value.status == 400
    assert page.title().startswith("Error: ")
    summary = page.get_by_role("alert")
    assert "There is a problem" in summary.inner_text()
    assert _focused_id(page) == "error-summary"
    page.screenshot(path=str(tmp_path / "mobile-errors.png"), full_page=True)

    # And the message is tied to the email field, whose value is kept
    email = page.get_by_label("Email address")
    assert email.get_attribute("aria-invalid") == "true"
    described_by = email.get_attribute("aria-describedby")
    assert described_by == "email-error"
    message = page.locator(f"#{described_by}").inner_text()
    assert "Enter an email address in the correct format" in message
    assert email.input_value() == "jane.buyer@example"
    assert page.get_by_label("Company").input_value() == "Example <b>Corp</b>"
    assert page.get_by_label("Company").get_attribute("aria-invalid") is None

    # When the buyer follows the summary's link with the keyboard
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.getAttribute('href')") == "#email"
    page.keyboard.press("Enter")

    # Then they are at the email field, correct it and finish
    page.wait_for_function("location.hash === '#email'")
    assert _focused_id(page) == "email"
    page.keyboard.press("Control+A")
    page.keyboard.type("jane.buyer@example.com")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.locator("h1").inner_text() == CONFIRMATION
    page.screenshot(path=str(tmp_path / "mobile-confirmation.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= MOBILE["width"]


def test_an_early_continue_shows_still_finishing_and_reloads_itself_into_the_form(
    new_page: Callable[..., Page], stack: LocalStack
) -> None:
    assert stack.recovery is not None
    # Given a registration parked on the recovery queue's way (its writes failed), and the
    # built-in page's Continue link of its 202 page
    parked = ParkedRegistration(
        registration_id=new_session_id(),
        product_code=NEW_STYLE.product_code,
        customer_aws_account_id=NEW_STYLE.customer_aws_account_id,
        license_arn=NEW_STYLE.license_arn,
        customer_identifier=None,
        agreement_id=NEW_STYLE.agreement_id,
        session_expires_at=int(time.time()) + 3600,
        csrf_token=new_csrf_token(),
        registered_at=datetime.now(UTC).isoformat(),
        request_id="e2e-parked",
    )
    link = registration_location(
        stack.signup_url, parked.registration_id, deferred_until=parked.session_expires_at
    )
    page = new_page()

    # When the buyer follows it before the recovery processor has replayed it
    answer = page.goto(link)

    # Then they are told it is still finishing, not that the link expired
    assert answer is not None and answer.status == 503
    assert page.locator("h1").inner_text() == "We are still setting up your account"
    # And when the processor replays it, the page reloads itself (no script) into the form
    sqs = local_session(LOCAL_REGION).client("sqs", endpoint_url=stack.dynamodb_url)
    sqs.send_message(QueueUrl=stack.recovery.queue_url, MessageBody=parked.to_message())
    page.get_by_label("Company").wait_for(timeout=20_000)
    assert page.locator("h1").inner_text() == "Set up your account"
