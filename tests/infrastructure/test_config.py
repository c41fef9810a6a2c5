"""cdk.json context parsing: typed values, and messages that name the faulty key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fulfillment.contract import SIGNUP_EXTRA_FIELDS
from fulfillment.core.errors import ConfigurationError
from fulfillment.signup.settings import load_signup_settings
from infra.config import ConfigError, ExtraField, FulfillmentConfig

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
    assert config.signup_complete_url is None
    assert config.signup_extra_fields == ()


@pytest.mark.parametrize("value", [None, ""])
def test_without_a_registration_url_buyers_use_the_built_in_page(value: str | None) -> None:
    config = FulfillmentConfig.from_context(
        Context({"productCodes": "prod-abc123"} | {"registrationUrl": value})
    )

    assert config.registration_url is None


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


def test_missing_product_codes_names_the_key() -> None:
    with pytest.raises(ConfigError, match="productCodes"):
        FulfillmentConfig.from_context(Context({"registrationUrl": "https://app.example.io/"}))


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
        ("signupCompleteUrl", "http://app.example.io/welcome"),
        ("signupCompleteUrl", "https://app.example.io/welcome#done"),
        ("signupExtraFields", "not json"),
        ("signupExtraFields", '{"name": "vat_id", "label": "VAT ID"}'),
        ("signupExtraFields", [{"name": "VAT", "label": "VAT ID"}]),
        ("signupExtraFields", [{"name": "email", "label": "Email again"}]),
        ("signupExtraFields", [{"name": "vat_id", "label": " "}]),
        ("signupExtraFields", [{"name": "vat_id", "label": "VAT", "required": "yes"}]),
        ("signupExtraFields", [{"name": "vat_id", "label": "VAT", "max_length": 0}]),
        ("signupExtraFields", [{"name": "a", "label": "A"}, {"name": "a", "label": "B"}]),
        ("signupExtraFields", [{"name": f"f{i}", "label": "F"} for i in range(11)]),
    ],
)
def test_invalid_value_names_its_key(key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=key):
        FulfillmentConfig.from_context(Context({**REQUIRED, key: value}))


def test_custom_domain_needs_a_certificate_arn() -> None:
    arn = "arn:aws:acm:us-east-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"

    config = FulfillmentConfig.from_context(
        Context({**REQUIRED, "domainName": "aws.app.example.io", "certificateArn": arn})
    )

    assert (config.domain_name, config.certificate_arn) == ("aws.app.example.io", arn)


def test_extra_fields_from_cdk_json_or_the_command_line() -> None:
    fields = [
        {"name": "vat_id", "label": " VAT ID ", "max_length": 20},
        {"name": "team_size", "label": "Team size", "required": True, "ignored": 1},
    ]
    expected = (
        ExtraField("vat_id", "VAT ID", False, 20),
        ExtraField("team_size", "Team size", True, 200),
    )

    from_json = FulfillmentConfig.from_context(Context({**REQUIRED, "signupExtraFields": fields}))
    from_cli = FulfillmentConfig.from_context(
        Context({**REQUIRED, "signupExtraFields": json.dumps(fields)})
    )

    assert from_json.signup_extra_fields == from_cli.signup_extra_fields == expected


EXTRA_FIELD_LISTS: list[Any] = [
    [],
    [{"name": "vat_id", "label": "VAT ID"}],
    [{"name": "vat_id", "label": "VAT ID", "required": True, "max_length": 2000}],
    [{"name": "x" * 40, "label": "L" * 100}],
    [{"name": "x" * 41, "label": "L"}],
    [{"name": "vat_id", "label": "L" * 101}],
    [{"name": "vat_id", "label": "VAT", "max_length": 2001}],
    [{"name": "vat_id", "label": "VAT", "max_length": True}],
    [{"name": "vat_id", "label": "VAT", "required": 1}],
    [{"name": "1st", "label": "First"}],
    [{"name": "csrf_token", "label": "Sneaky"}],
    [{"name": "a", "label": "A"}, {"name": "a", "label": "A"}],
    [{"name": f"f{i}", "label": "F"} for i in range(10)],
    [{"name": f"f{i}", "label": "F"} for i in range(11)],
    ["vat_id"],
    {"name": "vat_id", "label": "VAT"},
]


@pytest.mark.parametrize("fields", EXTRA_FIELD_LISTS)
def test_synth_accepts_exactly_the_extra_fields_the_sign_up_function_accepts(fields: Any) -> None:
    # Given one list, checked at synth by infra and at run time by the function's settings
    # (two parsers of one rule set: each reports in its own terms, context key or variable)
    raw = json.dumps(fields)
    message = ""
    try:
        at_run_time = load_signup_settings(
            {
                "CUSTOMERS_TABLE_NAME": "customers",
                "CONTACTS_TABLE_NAME": "contacts",
                SIGNUP_EXTRA_FIELDS: raw,
            }
        ).signup_extra_fields
    except ConfigurationError:
        at_run_time = None

    try:
        at_synth = FulfillmentConfig.from_context(
            Context({**REQUIRED, "signupExtraFields": raw})
        ).signup_extra_fields
    except ConfigError as error:
        at_synth, message = None, str(error)

    # Then both accept it, with the same fields, or both refuse it (synth naming the key)
    if at_run_time is None:
        assert at_synth is None
        assert "signupExtraFields" in message
    else:
        assert at_synth is not None
        assert [(f.name, f.label, f.required, f.max_length) for f in at_synth] == [
            (f.name, f.label, f.required, f.max_length) for f in at_run_time
        ]


def test_shipped_cdk_json_synthesizes_but_cannot_be_deployed_as_is() -> None:
    context = json.loads(Path("cdk.json").read_text())["context"]

    FulfillmentConfig.from_context(Context(context))
    with pytest.raises(ConfigError, match="productCodes"):
        FulfillmentConfig.from_context(Context({**context, "deploy": "true"}))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("registrationUrl", "https://signup.example.com/aws-marketplace"),
        ("trialRegistrationUrl", "https://trial.example.org/"),
        ("signupCompleteUrl", "https://app.example.net/welcome"),
    ],
)
def test_deploy_refuses_example_hosts(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=key):
        FulfillmentConfig.from_context(
            Context({**REQUIRED, "registrationUrl": "", key: value, "deploy": "true"})
        )


def test_deploy_without_a_registration_url_uses_the_built_in_page() -> None:
    config = FulfillmentConfig.from_context(
        Context({"productCodes": "prod-abc123", "registrationUrl": "", "deploy": "true"})
    )

    assert config.registration_url is None
