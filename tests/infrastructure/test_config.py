"""cdk.json context parsing: typed values, and messages that name the faulty key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.config import ConfigError, FulfillmentConfig

REQUIRED = {"productCodes": "prod-abc123", "registrationUrl": "https://app.example.io/aws"}


class Context:
    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def try_get_context(self, key: str) -> Any:
        return self.values.get(key)


def test_defaults() -> None:
    config = FulfillmentConfig.from_context(Context(REQUIRED))

    assert config.product_codes == ("prod-abc123",)
    assert config.waf_enabled is True
    assert config.marketplace_region == "us-east-1"
    assert config.log_retention_days == 90
    assert config.domain_name is None


def test_command_line_strings_are_parsed() -> None:
    config = FulfillmentConfig.from_context(
        Context(
            {
                **REQUIRED,
                "productCodes": "prod-a, prod-b",
                "wafEnabled": "false",
                "throttlingRateLimit": "20",
                "logRetentionDays": "30",
            }
        )
    )

    assert config.product_codes == ("prod-a", "prod-b")
    assert config.waf_enabled is False
    assert config.throttling_rate_limit == 20
    assert config.log_retention_days == 30


@pytest.mark.parametrize("key", ["productCodes", "registrationUrl"])
def test_missing_required_value_names_its_key(key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        FulfillmentConfig.from_context(Context({k: v for k, v in REQUIRED.items() if k != key}))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("registrationUrl", "http://app.example.io/aws"),
        ("trialRegistrationUrl", "not a url"),
        ("wafEnabled", "maybe"),
        ("logRetentionDays", "42"),
        ("throttlingBurstLimit", "lots"),
        ("alarmEmail", "oncall"),
        ("marketplaceRegion", "moon-1"),
        ("domainName", "fulfillment.example.io"),
        ("productCodes", "prod a"),
    ],
)
def test_invalid_value_names_its_key(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=key):
        FulfillmentConfig.from_context(Context({**REQUIRED, key: value}))


def test_custom_domain_needs_a_certificate_arn() -> None:
    arn = "arn:aws:acm:us-east-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"

    config = FulfillmentConfig.from_context(
        Context({**REQUIRED, "domainName": "aws.app.example.io", "certificateArn": arn})
    )

    assert (config.domain_name, config.certificate_arn) == ("aws.app.example.io", arn)


def test_shipped_cdk_json_synthesizes_but_cannot_be_deployed_as_is() -> None:
    context = json.loads(Path("cdk.json").read_text())["context"]

    FulfillmentConfig.from_context(Context(context))
    with pytest.raises(ConfigError, match="productCodes"):
        FulfillmentConfig.from_context(Context({**context, "deploy": "true"}))
