"""The real handler against moto's DynamoDB server and the Marketplace stand-in, over HTTP."""

from __future__ import annotations

import io
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import boto3
import pytest

from local.dynamodb import RunningDynamoDB, create_tables, start_dynamodb
from local.gateway import LambdaContext
from local.marketplace import (
    MarketplaceStandIn,
    RunningServer,
    default_customers,
    start_server,
)
from tests.retries import without_backoff

PRODUCT = "prod-integration1"
REGISTRATION_URL = "https://app.example.com/signup?source=aws"
TRIAL_URL = "https://app.example.com/trial"


@pytest.fixture(scope="session")
def dynamodb_server() -> Iterator[RunningDynamoDB]:
    server = start_dynamodb()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def marketplace_server() -> Iterator[tuple[MarketplaceStandIn, RunningServer]]:
    stand_in = MarketplaceStandIn(default_customers(PRODUCT))
    server = start_server(stand_in)
    yield stand_in, server
    server.stop()


@dataclass
class Stack:
    marketplace: MarketplaceStandIn
    dynamodb: Any
    customers_table: str
    idempotency_table: str
    contacts_table: str
    sqs: Any = None
    recovery_queue_url: str = ""

    def recovery_messages(self) -> list[dict[str, Any]]:
        """The recovery queue's messages, received (so invisible for the queue's timeout)."""
        messages: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=self.recovery_queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
            ).get("Messages", [])
            if not batch:
                return messages
            messages += batch

    def customer(self, pk: str) -> dict[str, Any] | None:
        item = self.dynamodb.get_item(
            TableName=self.customers_table,
            Key={"pk": {"S": pk}, "sk": {"S": "CUSTOMER"}},
            ConsistentRead=True,
        ).get("Item")
        return item

    def items(self, table: str | None = None) -> list[dict[str, Any]]:
        paginator = self.dynamodb.get_paginator("scan")
        return [
            item
            for page in paginator.paginate(TableName=table or self.customers_table)
            for item in page["Items"]
        ]


def _reset_function_caches() -> None:
    """A new container's view for each test: clients and settings read afresh from the
    environment this fixture sets (the handlers' own defaults are keyed on their settings)."""
    from fulfillment.core import aws
    from fulfillment.handoff.settings import get_handoff_settings
    from fulfillment.recovery import handler as recovery
    from fulfillment.recovery.settings import get_recovery_settings
    from fulfillment.registration.settings import get_settings
    from fulfillment.signup.settings import get_signup_settings

    for cached in (
        aws.session,
        aws.dynamodb,
        aws.metering,
        aws.recovery_sqs,
        recovery.default_processor,
        get_settings,
        get_signup_settings,
        get_handoff_settings,
        get_recovery_settings,
    ):
        cached.cache_clear()


@pytest.fixture
def stack(
    dynamodb_server: RunningDynamoDB,
    marketplace_server: tuple[MarketplaceStandIn, RunningServer],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Stack]:
    """Fresh tables and a reset stand-in per test; the function configured to use them."""
    stand_in, server = marketplace_server
    stand_in.reset()
    suffix = uuid.uuid4().hex[:8]
    customers, idempotency = f"customers-{suffix}", f"idempotency-{suffix}"
    contacts = f"contacts-{suffix}"
    client = boto3.client("dynamodb", endpoint_url=dynamodb_server.url, region_name="us-east-1")
    create_tables(client, customers, idempotency, contacts)
    sqs = boto3.client("sqs", endpoint_url=dynamodb_server.url, region_name="us-east-1")
    recovery_url = sqs.create_queue(
        QueueName=f"recovery-{suffix}", Attributes={"VisibilityTimeout": "60"}
    )["QueueUrl"]
    environment = {
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_server.url,
        "AWS_ENDPOINT_URL_SQS": dynamodb_server.url,
        "RECOVERY_QUEUE_URL": recovery_url,
        "AWS_ENDPOINT_URL_MARKETPLACE_METERING": server.url,
        # The lifecycle function's other Marketplace APIs: the same stand-in, never AWS.
        "AWS_ENDPOINT_URL_MARKETPLACE_ENTITLEMENT_SERVICE": server.url,
        "AWS_ENDPOINT_URL_MARKETPLACE_AGREEMENT": server.url,
        "CUSTOMERS_TABLE_NAME": customers,
        "IDEMPOTENCY_TABLE_NAME": idempotency,
        "CONTACTS_TABLE_NAME": contacts,
        "PRODUCT_CODES": f"{PRODUCT},prod-second",
        "REGISTRATION_URL": REGISTRATION_URL,
        "TRIAL_REGISTRATION_URL": TRIAL_URL,
        "MARKETPLACE_REGION": "us-east-1",
        "SESSION_TTL_SECONDS": "3600",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    _reset_function_caches()
    yield Stack(stand_in, client, customers, idempotency, contacts, sqs, recovery_url)
    _reset_function_caches()


# --------------------------------------------------------------------------- the surfaces
# The three buyer-facing handlers with their dependencies injected (see each handler's
# docstring): this stack's settings, and the functions' own clients. Like the functions'
# defaults, clients and adapters are built on first use, so a test pays only for what it
# calls.

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


class FunctionClients:
    """The functions' own boto3 clients for this test (core/aws.py: their configuration and
    the deadline hook; fresh per test, as the stack resets them), each built on first use and
    retrying as configured but without botocore's backoff sleeps (tests/retries.py)."""

    @cached_property
    def dynamodb(self) -> Any:
        from fulfillment.core import aws

        return without_backoff(aws.dynamodb())

    @cached_property
    def metering(self) -> Any:
        from fulfillment.core import aws

        return without_backoff(aws.metering("us-east-1"))

    @cached_property
    def sqs(self) -> Any:
        from fulfillment.core import aws

        return without_backoff(aws.recovery_sqs())


@pytest.fixture
def clients(stack: Stack) -> FunctionClients:
    return FunctionClients()


def injected(handler: Callable[..., dict[str, Any]], build: Callable[[], Any]) -> Handler:
    """``handler`` called with the keyword dependencies ``build`` returns (a dict), built on
    the first call and kept for the others."""
    built: dict[str, Any] = {}

    def call(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        if not built:
            built.update(build())
        return handler(event, context, **built)

    return call


def registrar(clients: FunctionClients, **settings: Any) -> Any:
    """The fulfillment URL's Registrar for this stack's environment, ``settings`` changed."""
    from fulfillment.registration.handler import Registrar
    from fulfillment.registration.settings import load_settings

    return Registrar(
        load_settings(os.environ)._replace(**settings),
        dynamodb=clients.dynamodb,
        metering=clients.metering,
        recovery_sqs=lambda: clients.sqs,
    )


@pytest.fixture
def fulfillment_url(clients: FunctionClients) -> Handler:
    """fulfillment.api.lambda_handler with this stack's Registrar."""
    from fulfillment.api import lambda_handler

    return injected(lambda_handler, lambda: {"registrar": registrar(clients)})


def signup_with(clients: FunctionClients, **environment: str) -> Handler:
    """fulfillment.signup's handler: settings from this stack's environment (SIGNUP_* unset,
    ``environment`` added), its store on the functions' DynamoDB client."""
    from fulfillment.customers.store import DynamoDBCustomerStore
    from fulfillment.signup.handler import lambda_handler
    from fulfillment.signup.settings import load_signup_settings

    unset = {"SIGNUP_COMPLETE_URL": "", "SIGNUP_EXTRA_FIELDS": ""}
    settings = load_signup_settings({**os.environ, **unset, **environment})

    def store() -> dict[str, Any]:
        tables = settings.customers_table_name, settings.contacts_table_name
        adapter = DynamoDBCustomerStore(clients.dynamodb, tables[0], contacts_table_name=tables[1])
        return {"settings": settings, "store": adapter}

    return injected(lambda_handler, store)


@pytest.fixture
def signup_page(clients: FunctionClients) -> Handler:
    """fulfillment.signup's handler for this stack, no SIGNUP_* configured."""
    return signup_with(clients)


@pytest.fixture
def seller_handoff(stack: Stack, clients: FunctionClients) -> Handler:
    """fulfillment.handoff's handler with its store on this stack's customers table."""
    from fulfillment.customers.store import DynamoDBCustomerStore
    from fulfillment.handoff.handler import lambda_handler

    return injected(
        lambda_handler,
        lambda: {"store": DynamoDBCustomerStore(clients.dynamodb, stack.customers_table)},
    )


def local_function_environment(stack: Stack, **extra: str) -> dict[str, str]:
    """What make run gives a function it spawns (local/run.py), for this stack's tables."""
    return {
        "CUSTOMERS_TABLE_NAME": stack.customers_table,
        "IDEMPOTENCY_TABLE_NAME": stack.idempotency_table,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "fulfillment",
        **extra,
    }


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext(
        function_name="fulfillment-api",
        memory_limit_in_mb=512,
        timeout_seconds=20,
        log_stream_name="2026/11/26/[$LATEST]0123456789abcdef",
    )


@pytest.fixture
def function_logs(caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    """Everything the function logs: its Powertools JSON lines plus every other logger, at DEBUG."""
    from fulfillment.core.observability import logger

    stream = io.StringIO()
    handler = logger.registered_handler
    previous = handler.setStream(stream)  # type: ignore[attr-defined]
    caplog.set_level(logging.DEBUG)
    yield stream
    handler.setStream(previous)  # type: ignore[attr-defined]
    for record in caplog.records:
        stream.write(f"{record.name} {record.levelname} {record.getMessage()}\n")


def all_logs(stream: io.StringIO, caplog: pytest.LogCaptureFixture) -> str:
    records = "\n".join(f"{r.name} {r.getMessage()} {r.__dict__}" for r in caplog.records)
    return stream.getvalue() + "\n" + records


os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
