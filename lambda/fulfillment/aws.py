"""boto3 clients, built once per execution environment from one shared session.

Client creation is a cold-start cost (a new session costs 0.16 s, a second client from the
same session 0.04 s), so every adapter takes its client from here. Endpoints honour the
standard AWS_ENDPOINT_URL_* variables, which is how the local stack reaches its stand-ins.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from fulfillment import deadline

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_meteringmarketplace import MarketplaceMeteringClient

# Per attempt at most connect 1 s + read 2 s (Marketplace) or 1 s + 1 s (DynamoDB), three
# attempts with standard-mode backoff. A registration makes several calls in a row, so the
# sum is bounded by the invocation's deadline instead (deadline.py): no attempt starts after it.
MARKETPLACE_CONFIG = Config(
    connect_timeout=1,
    read_timeout=2,
    retries={"mode": "standard", "total_max_attempts": 3},
    tcp_keepalive=True,
)
DYNAMODB_CONFIG = Config(
    connect_timeout=1,
    read_timeout=1,
    retries={"mode": "standard", "total_max_attempts": 3},
    tcp_keepalive=True,
)


@cache
def session() -> boto3.session.Session:
    return boto3.session.Session()


@cache
def dynamodb() -> DynamoDBClient:
    client = session().client("dynamodb", config=DYNAMODB_CONFIG)
    client.meta.events.register("before-send", deadline.check)
    return client


@cache
def metering(region: str) -> MarketplaceMeteringClient:
    client = session().client("meteringmarketplace", region_name=region, config=MARKETPLACE_CONFIG)
    client.meta.events.register("before-send", deadline.check)
    return client


# Parking a resolved registration on the recovery queue (fulfillment.recovery_queue): the
# buyer is waiting, and the deadline's grace (deadline.grace) bounds the attempts.
RECOVERY_CONFIG = Config(
    connect_timeout=1,
    read_timeout=1,
    retries={"mode": "standard", "total_max_attempts": 3},
    tcp_keepalive=True,
)


@cache
def recovery_sqs() -> Any:
    """Built on the first parked registration only: the cold path never pays for it."""
    client = session().client("sqs", config=RECOVERY_CONFIG)
    client.meta.events.register("before-send", deadline.check)
    return client


# The publisher runs after the buyer's request, so it can afford more patience than the API:
# 5 attempts, read 5 s; what still fails goes to the retry queue, then back to Lambda.
DELIVERY_CONFIG = Config(
    connect_timeout=2,
    read_timeout=5,
    retries={"mode": "standard", "total_max_attempts": 5},
    tcp_keepalive=True,
)


# No EventBridge or SQS stubs are pinned: fulfillment.delivery types these by the calls it makes.
@cache
def events() -> Any:
    return session().client("events", config=DELIVERY_CONFIG)


@cache
def sqs() -> Any:
    return session().client("sqs", config=DELIVERY_CONFIG)


# The lifecycle processor runs from a queue: patience is cheap, and what still fails is
# retried by SQS. GetEntitlements exists in us-east-1 only (fulfillment.entitlements).
ENTITLEMENT_CONFIG = Config(
    connect_timeout=2,
    read_timeout=5,
    retries={"mode": "standard", "total_max_attempts": 5},
    tcp_keepalive=True,
)


# No stubs are pinned for marketplace-entitlement: fulfillment.entitlements uses one paginator.
@cache
def entitlement(region: str) -> Any:
    """The endpoint honours AWS_ENDPOINT_URL_MARKETPLACE_ENTITLEMENT_SERVICE (service id
    "Marketplace Entitlement Service"), which is how the local stack reaches its stand-in."""
    return session().client(
        "marketplace-entitlement", region_name=region, config=ENTITLEMENT_CONFIG
    )
