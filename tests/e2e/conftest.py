"""The local stack (moto, Marketplace stand-in, gateway + real function) and a real browser."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from local.marketplace import MarketplaceStandIn
from local.run import LocalStack, start_local_stack

if TYPE_CHECKING:
    from playwright.sync_api import Browser

PRODUCT_CODE = "prod-localexample1"
# The product's default: REGISTRATION_URL unset, so buyers get the built-in sign-up page.
# Free-trial buyers go to the stand-in seller page, so that hand-off is exercised too.
TRIAL_REGISTRATION_PATH = "/_local/registration?offer=free-trial"
SIGNUP_EXTRA_FIELDS = (
    '[{"name": "team_size", "label": "Team size", "required": false, "max_length": 6}]'
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


@contextmanager
def running_stack(environ: dict[str, str], workers: int | None = None) -> Iterator[LocalStack]:
    """A local stack on a free port with ``environ``, warmed up, stopped afterwards."""
    running = start_local_stack(port=0, environ=environ, workers=workers)
    try:
        running.warm_up()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    with running_stack(
        {
            "PRODUCT_CODES": PRODUCT_CODE,
            "LOCAL_WORKERS": "2",
            "TRIAL_REGISTRATION_URL": TRIAL_REGISTRATION_PATH,
            "SIGNUP_EXTRA_FIELDS": SIGNUP_EXTRA_FIELDS,
        }
    ) as running:
        yield running


@pytest.fixture
def marketplace(stack: LocalStack) -> MarketplaceStandIn:
    assert stack.marketplace is not None, "the e2e stack runs its own Marketplace stand-in"
    return stack.marketplace


@pytest.fixture(autouse=True)
def _fresh_state(stack: LocalStack) -> Iterator[None]:
    """Each test starts with empty tables and a stand-in without faults or issued tokens."""
    _empty_tables(stack)
    if stack.marketplace is not None:
        stack.marketplace.reset()
    yield
    if stack.marketplace is not None:
        stack.marketplace.reset()


def _empty_tables(stack: LocalStack) -> None:
    client = stack.dynamodb_client()
    for table, keys in (
        (stack.customers_table, ("pk", "sk")),
        (stack.idempotency_table, ("id",)),
        (stack.contacts_table, ("pk",)),
    ):
        for page in client.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                client.delete_item(TableName=table, Key={k: item[k] for k in keys})


def _chromium_path() -> str | None:
    found = shutil.which("chromium")
    if found:
        return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = _chromium_path()
    if path is None:
        message = (
            "Chromium not installed: apt-get install chromium "
            "(playwright's own browser download does not work here)"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}. CI must run the browser tests (make chromium).")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        launched = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()
    finally:
        playwright.stop()
