"""The buyer's journey in headless Chromium: Marketplace page -> fulfillment URL -> sign-up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from fulfillment.customers.models import license_key
from local.marketplace import MarketplaceStandIn, default_customers
from local.run import LocalStack
from tests.e2e.conftest import PRODUCT_CODE

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

FREE_TRIAL = {c.name: c for c in default_customers(PRODUCT_CODE)}["free-trial"]
SUBSCRIPTIONS_URL_PREFIX = "https://console.aws.amazon.com/marketplace/"


@pytest.fixture
def page(browser: Browser, stack: LocalStack) -> Iterator[Page]:
    context = browser.new_context()
    # No internet here: anything outside the local stack must never be requested.
    local_origins = (stack.url, stack.marketplace_url)
    context.route(
        "**/*",
        lambda route: (
            route.continue_() if route.request.url.startswith(local_origins) else route.abort()
        ),
    )
    opened = context.new_page()
    try:
        yield opened
    finally:
        context.close()


def _screenshot(page: Page, path: Path) -> None:
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0


def test_seller_registration_url_receives_the_hand_off(
    page: Page, stack: LocalStack, tmp_path: Path
) -> None:
    # The e2e stack sends free-trial buyers to the stand-in seller page (TRIAL_REGISTRATION_URL),
    # as a seller's own sign-up site would receive them; everyone else gets the built-in page.
    assert stack.marketplace_page_url is not None
    assert stack.trial_registration_url is not None
    seller_page = stack.trial_registration_url.partition("?")[0]

    # Given the buyer is on the (stand-in) Marketplace page
    page.goto(stack.marketplace_page_url)

    # When they choose "Set up your account" as the free-trial buyer
    form = page.locator('[data-customer="free-trial"]')
    with page.expect_navigation(url=f"{seller_page}?*"):
        form.get_by_role("button", name="Set up your account").click()

    # Then they land on the seller's page, which can look up their account
    assert page.url.startswith(stack.trial_registration_url + "&registration=")
    assert page.locator("h1", has_text="Registration received").count() == 1
    account = page.locator('[data-field="customer_aws_account_id"]')
    assert account.inner_text() == FREE_TRIAL.customer_aws_account_id == "777788889999"
    _screenshot(page, tmp_path / "registration.png")

    # And the customer is in DynamoDB
    item = stack.dynamodb_client().get_item(
        TableName=stack.customers_table,
        Key={"pk": {"S": license_key(FREE_TRIAL.license_arn)}, "sk": {"S": "CUSTOMER"}},
        ConsistentRead=True,
    )
    assert item["Item"]["registration_count"] == {"N": "1"}


def test_expired_registration_sends_the_buyer_back_to_marketplace(
    page: Page, stack: LocalStack, marketplace: MarketplaceStandIn, tmp_path: Path
) -> None:
    assert stack.marketplace_page_url is not None
    # Given every token has expired by the time it is resolved
    marketplace.set_expire_after(0)
    page.goto(stack.marketplace_page_url)

    # When the buyer chooses "Set up your account"
    form = page.locator('[data-customer="new-style"]')
    with page.expect_navigation(url=stack.fulfillment_url) as navigation:
        form.get_by_role("button", name="Set up your account").click()

    # Then they see why, and how to start again, with a link to their subscriptions
    response = navigation.value
    assert response is not None
    assert response.status == 400
    text = page.locator("main").inner_text()
    assert "return to AWS Marketplace" in text
    assert "Set up your account\u201d again" in text
    link = page.get_by_role("link", name="AWS Marketplace subscriptions")
    href = link.get_attribute("href")
    assert href is not None
    assert href.startswith(SUBSCRIPTIONS_URL_PREFIX)
    _screenshot(page, tmp_path / "expired.png")
