"""Metering on the local stack: docs/examples/post_usage.py signs a POST /usage to the local
gateway, the intake stores it in moto, and the hourly run bills it at the stand-in."""

from __future__ import annotations

import importlib.util
import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import boto3
import pytest
from botocore.config import Config

from fulfillment import contract
from fulfillment.metering.marketplace import MarketplaceMeter
from fulfillment.metering.run import meter_closed_hours
from fulfillment.metering.store import DynamoDBUsageStore
from fulfillment.metering.usage import hour_of
from local.lifecycle import customer_key
from local.marketplace import MarketplaceStandIn
from local.run import LocalStack
from tests.e2e.test_lifecycle_local import _press

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "post_usage.py"


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("post_usage", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _subscribed(stack: LocalStack, marketplace: MarketplaceStandIn, name: str) -> str:
    customer = next(c for c in marketplace.customers if c.name == name)
    _press(stack.marketplace_url, name, "subscribe")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        item = (
            stack.dynamodb_client()
            .get_item(
                TableName=stack.customers_table, Key=customer_key(customer), ConsistentRead=True
            )
            .get("Item")
            or {}
        )
        if item.get("status", {}).get("S") == "subscribed":
            return str(customer.license_arn)
        time.sleep(0.2)
    raise AssertionError(f"{name} never became subscribed: {item}")


def test_usage_posted_with_the_example_is_billed_by_the_hourly_run(
    stack: LocalStack,
    marketplace: MarketplaceStandIn,
    example: ModuleType,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a subscribed buyer and the seller's report of its last hour's usage
    license_arn = _subscribed(stack, marketplace, "new-style")
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    reports = [
        {
            "usageId": "local-1",
            "licenseArn": license_arn,
            "dimension": "requests",
            "quantity": "41.5",
            "timestamp": an_hour_ago.isoformat(),
        }
    ]
    (tmp_path / "reports.json").write_text(json.dumps(reports))
    for name, value in (("AWS_ACCESS_KEY_ID", "local"), ("AWS_SECRET_ACCESS_KEY", "local")):
        monkeypatch.setenv(name, value)

    # When the example posts it to the local stack's POST /usage (SigV4-signed)
    code = example.main(
        ["--url", f"{stack.url}/usage", "--region", "us-east-1", str(tmp_path / "reports.json")]
    )

    # Then it was accepted in its hour
    answer = json.loads(capsys.readouterr().out)
    assert code == 0, answer
    assert answer["results"] == [
        {"usageId": "local-1", "status": "accepted", "hour": hour_of(an_hour_ago).isoformat()}
    ]
    # And the hourly run bills exactly it
    environment = stack.function_environment
    store = DynamoDBUsageStore(
        stack.dynamodb_client(),
        environment[contract.USAGE_TABLE_NAME],
        stack.customers_table,
    )
    client = boto3.client(
        "meteringmarketplace",
        region_name="us-east-1",
        endpoint_url=stack.marketplace_url,
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"total_max_attempts": 1}),
    )
    meter_closed_hours(
        datetime.now(UTC),
        store=store,
        meter=MarketplaceMeter(client),
        dimensions=environment[contract.METERING_DIMENSIONS].split(","),
        product_codes=frozenset(environment[contract.PRODUCT_CODES].split(",")),
    )
    billed = marketplace.metering.billed()
    assert billed[license_arn, "requests", hour_of(an_hour_ago).isoformat()] == Decimal("41.5")


def test_an_unsigned_post_is_refused_by_the_gateway(stack: LocalStack) -> None:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{stack.url}/usage", data=b'{"reports": []}', method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)

    assert caught.value.code == 403
