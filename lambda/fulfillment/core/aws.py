"""boto3 clients, built once per execution environment from one shared session.

Client creation is a cold-start cost (a new session costs 0.16 s, a second client from the
same session 0.04 s), so every adapter takes its client from here. Endpoints honour the
standard AWS_ENDPOINT_URL_* variables, which is how the local stack reaches its stand-ins.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from fulfillment.core import deadline

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_meteringmarketplace import MarketplaceMeteringClient


def _config(*, connect: float, read: float, attempts: int) -> Config:
    return Config(
        connect_timeout=connect,
        read_timeout=read,
        retries={"mode": "standard", "total_max_attempts": attempts},
        tcp_keepalive=True,
    )


# While a buyer waits: per attempt at most connect 1 s + read 2 s (Marketplace) or 1 s + 1 s
# (DynamoDB, and the recovery queue), three attempts with standard-mode backoff. A
# registration makes several calls in a row, so the sum is bounded by the invocation's
# deadline instead (deadline.py): no attempt starts after it.
MARKETPLACE_CONFIG = _config(connect=1, read=2, attempts=3)
DYNAMODB_CONFIG = _config(connect=1, read=1, attempts=3)
# Functions fed by a stream or a queue (publisher, lifecycle): nobody waits, patience is
# cheap, and what still fails is retried by the event source.
QUEUE_CONFIG = _config(connect=2, read=5, attempts=5)


def _deadline_bound(client: Any) -> Any:
    client.meta.events.register("before-send", deadline.check)
    return client


class RepeatedTokenError(Exception):
    """A paginated API gave a page token it had already given: reading on would loop."""


def every_page(pages: Iterable[dict[str, Any]], token_key: str) -> Iterator[dict[str, Any]]:
    """Every page of a botocore paginator. botocore refuses a token repeated on the very next
    page only; one seen on any earlier page would loop until the function times out, so that
    raises RepeatedTokenError (a page may be empty and still carry a token: not an end)."""
    seen: set[object] = set()
    for page in pages:
        yield page
        token = page.get(token_key)
        if token in seen:
            raise RepeatedTokenError(token_key)
        seen.add(token)


@cache
def session() -> boto3.session.Session:
    return boto3.session.Session()


@cache
def dynamodb() -> DynamoDBClient:
    client: DynamoDBClient = _deadline_bound(session().client("dynamodb", config=DYNAMODB_CONFIG))
    return client


@cache
def metering(region: str) -> MarketplaceMeteringClient:
    client: MarketplaceMeteringClient = _deadline_bound(
        session().client("meteringmarketplace", region_name=region, config=MARKETPLACE_CONFIG)
    )
    return client


@cache
def recovery_sqs() -> Any:
    """Parks a resolved registration (fulfillment.recovery_queue). Built on the first parked
    registration only, so the cold path never pays for it; deadline.grace bounds it."""
    return _deadline_bound(session().client("sqs", config=DYNAMODB_CONFIG))


# No EventBridge or SQS stubs are pinned: fulfillment.delivery types these by the calls it makes.
@cache
def events() -> Any:
    return session().client("events", config=QUEUE_CONFIG)


@cache
def sqs() -> Any:
    return session().client("sqs", config=QUEUE_CONFIG)


# No stubs are pinned for marketplace-entitlement: fulfillment.entitlements makes one call.
@cache
def entitlement(region: str) -> Any:
    """GetEntitlements exists in us-east-1 only (fulfillment.entitlements). The endpoint
    honours AWS_ENDPOINT_URL_MARKETPLACE_ENTITLEMENT_SERVICE (service id "Marketplace
    Entitlement Service"), which is how the local stack reaches its stand-in."""
    return session().client("marketplace-entitlement", region_name=region, config=QUEUE_CONFIG)


@cache
def agreement(region: str) -> Any:
    """GetAgreementTerms (fulfillment.lifecycle.terms). The endpoint honours
    AWS_ENDPOINT_URL_MARKETPLACE_AGREEMENT (service id "Marketplace Agreement")."""
    return session().client("marketplace-agreement", region_name=region, config=QUEUE_CONFIG)


@cache
def batch_metering(region: str) -> MarketplaceMeteringClient:
    """BatchMeterUsage for the hourly run (fulfillment.metering): nobody waits, so the queue
    consumers' patience and no invocation deadline."""
    client: MarketplaceMeteringClient = session().client(
        "meteringmarketplace", region_name=region, config=QUEUE_CONFIG
    )
    return client
