"""tests/retries.py: the function's retries, attempt for attempt, without the backoff sleeps."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ClientError

from fulfillment.core import aws
from tests.retries import without_backoff


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


def _answering(client: Any, code: str) -> list[int]:
    """Every request gets a 400 ``code``; returns the attempt counter."""
    attempts = [0]

    def answer(request: Any, **_: Any) -> AWSResponse:
        attempts[0] += 1
        body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}"}).encode()
        return AWSResponse(request.url, 400, {}, _Raw(body))

    client.meta.events.register_first("before-send", answer)
    return attempts


def _dynamodb(config: Config) -> Any:
    return boto3.session.Session().client("dynamodb", region_name="us-east-1", config=config)


@pytest.mark.parametrize(
    ("config", "attempts"),
    [
        (aws.DYNAMODB_CONFIG, 3),  # what the functions use while a buyer waits
        (Config(retries={"mode": "standard", "total_max_attempts": 6}), 6),
    ],
)
def test_a_throttle_is_retried_as_configured_without_waiting(config: Config, attempts: int) -> None:
    # Given a client whose every attempt is throttled (real backoff: up to 1 s, 2 s, 4 s, ...)
    client = without_backoff(_dynamodb(config))
    made = _answering(client, "ProvisionedThroughputExceededException")

    # When a call is made
    started = time.monotonic()
    with pytest.raises(ClientError, match="ProvisionedThroughputExceeded"):
        client.get_item(TableName="customers", Key={"pk": {"S": "x"}})

    # Then every configured attempt was made, one right after the other
    assert made[0] == attempts
    assert time.monotonic() - started < 0.5


def test_an_error_botocore_does_not_retry_is_still_not_retried() -> None:
    client = without_backoff(_dynamodb(aws.DYNAMODB_CONFIG))
    made = _answering(client, "ValidationException")

    with pytest.raises(ClientError, match="ValidationException"):
        client.get_item(TableName="customers", Key={"pk": {"S": "x"}})

    assert made[0] == 1
