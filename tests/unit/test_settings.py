from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import ClassVar

import pytest

from fulfillment import contract
from fulfillment.core.errors import ConfigurationError
from fulfillment.events.settings import load_publisher_settings
from fulfillment.handoff.settings import load_handoff_settings
from fulfillment.lifecycle.settings import load_lifecycle_settings
from fulfillment.recovery.settings import load_recovery_settings
from fulfillment.registration.settings import load_settings
from fulfillment.signup.settings import ExtraField, load_signup_settings
from tests.functions import ENVIRONMENT_KEYS

VALID = {
    "CUSTOMERS_TABLE_NAME": "customers",
    "IDEMPOTENCY_TABLE_NAME": "idempotency",
    "PRODUCT_CODES": "prod-abc, prod-def,",
    "REGISTRATION_URL": "https://app.example.com/signup",
    "RECOVERY_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/recovery",
}


def test_defaults_apply_to_optional_values() -> None:
    settings = load_settings(VALID)

    assert settings.product_codes == {"prod-abc", "prod-def"}
    assert settings.marketplace_region == "us-east-1"
    assert settings.session_ttl_seconds == 3600
    assert settings.trial_registration_url is None


@pytest.mark.parametrize(
    "variable",
    ["CUSTOMERS_TABLE_NAME", "IDEMPOTENCY_TABLE_NAME", "PRODUCT_CODES", "RECOVERY_QUEUE_URL"],
)
def test_missing_required_variable_is_named(variable: str) -> None:
    environ = {k: v for k, v in VALID.items() if k != variable}

    with pytest.raises(ConfigurationError) as error:
        load_settings(environ)

    assert error.value.variable == variable
    assert variable in str(error.value)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SESSION_TTL_SECONDS", "soon"),
        ("SESSION_TTL_SECONDS", "5"),
        ("SESSION_TTL_SECONDS", "99999999"),
        ("MARKETPLACE_REGION", "mars"),
        ("PRODUCT_CODES", " , "),
        ("PRODUCT_CODES", "prod abc"),
        ("REGISTRATION_URL", "http://app.example.com/signup"),
        ("REGISTRATION_URL", "javascript:alert(1)"),
        ("REGISTRATION_URL", "/relative"),
        ("REGISTRATION_URL", "https://app.example.com/#frag"),
        ("TRIAL_REGISTRATION_URL", "ftp://app.example.com/"),
        ("CUSTOMERS_TABLE_NAME", "bad name!"),
        ("RECOVERY_QUEUE_URL", "http://sqs.us-east-1.amazonaws.com/123456789012/recovery"),
        ("RECOVERY_QUEUE_URL", "recovery"),
    ],
)
def test_invalid_values_are_named(variable: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as error:
        load_settings({**VALID, variable: value})

    assert error.value.variable == variable


def test_without_a_registration_url_the_built_in_sign_up_page_is_used() -> None:
    settings = load_settings({k: v for k, v in VALID.items() if k != "REGISTRATION_URL"})

    assert settings.registration_url is None


def test_http_is_allowed_for_loopback_only() -> None:
    settings = load_settings({**VALID, "REGISTRATION_URL": "http://127.0.0.1:8000/_local/r"})

    assert settings.registration_url == "http://127.0.0.1:8000/_local/r"


class _Recording(Mapping[str, str]):
    """An environment that has a valid value for every variable and notes which are read."""

    VALUES: ClassVar[dict[str, str]] = {
        "PRODUCT_CODES": "prod-abc",
        "REGISTRATION_URL": "https://app.example.com/signup",
        "TRIAL_REGISTRATION_URL": "https://app.example.com/trial",
        "SIGNUP_COMPLETE_URL": "https://app.example.com/welcome",
        "SIGNUP_EXTRA_FIELDS": "[]",
        "MARKETPLACE_REGION": "us-east-1",
        "SESSION_TTL_SECONDS": "3600",
        "EVENT_BUS_NAME": "registrations",
        "RECOVERY_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/recovery",
        "PUBLISH_RETRY_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/retry",
    }

    def __init__(self) -> None:
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.read.add(name)
        if name.endswith("_TABLE_NAME"):
            return name.lower()
        return self.VALUES[name]

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


@pytest.mark.parametrize(
    ("handler", "load"),
    [
        (contract.FULFILLMENT_HANDLER, load_settings),
        (contract.SIGNUP_HANDLER, load_signup_settings),
        (contract.HANDOFF_HANDLER, load_handoff_settings),
        (contract.PUBLISHER_HANDLER, load_publisher_settings),
        (contract.LIFECYCLE_HANDLER, load_lifecycle_settings),
        (contract.RECOVERY_HANDLER, load_recovery_settings),
    ],
)
def test_each_function_reads_exactly_its_environment_keys(
    handler: str, load: Callable[[Mapping[str, str]], object]
) -> None:
    # Given an environment that answers every variable, When the function loads its settings,
    # Then it reads exactly the variables its settings module declares (and the stack sets).
    environ = _Recording()
    load(environ)
    assert environ.read == ENVIRONMENT_KEYS[handler]


SIGNUP_TABLES = {"CUSTOMERS_TABLE_NAME": "customers", "CONTACTS_TABLE_NAME": "contacts"}
EXTRA = '[{"name": "team_size", "label": "Team size", "required": true, "max_length": 5}]'


def test_extra_sign_up_fields_are_parsed() -> None:
    settings = load_signup_settings({**SIGNUP_TABLES, "SIGNUP_EXTRA_FIELDS": EXTRA})

    assert settings.signup_extra_fields == (ExtraField("team_size", "Team size", True, 5),)
    assert settings.signup_complete_url is None
    assert settings.contacts_table_name == "contacts"


@pytest.mark.parametrize("value", ["", "  ", "no/slashes"])
def test_sign_up_needs_the_contacts_table(value: str) -> None:
    with pytest.raises(ConfigurationError) as error:
        load_signup_settings({**SIGNUP_TABLES, "CONTACTS_TABLE_NAME": value})

    assert error.value.variable == "CONTACTS_TABLE_NAME"


@pytest.mark.parametrize(
    "value",
    [
        "not json",
        '{"name": "x"}',
        '[{"name": "Team Size", "label": "x"}]',
        '[{"name": "email", "label": "Email again"}]',
        '[{"name": "a", "label": "A"}, {"name": "a", "label": "A"}]',
        '[{"name": "a", "label": ""}]',
        '[{"name": "a", "label": "A", "required": "yes"}]',
        '[{"name": "a", "label": "A", "max_length": 0}]',
        '[{"name": "a", "label": "A", "max_length": 99999}]',
    ],
)
def test_invalid_extra_fields_are_named(value: str) -> None:
    with pytest.raises(ConfigurationError) as error:
        load_signup_settings({**SIGNUP_TABLES, "SIGNUP_EXTRA_FIELDS": value})

    assert error.value.variable == "SIGNUP_EXTRA_FIELDS"


def test_metrics_namespace_falls_back_to_a_default() -> None:
    from fulfillment.core.settings import metrics_namespace

    assert metrics_namespace({}) == "Fulfillment"
    assert metrics_namespace({"POWERTOOLS_METRICS_NAMESPACE": " "}) == "Fulfillment"
    assert metrics_namespace({"POWERTOOLS_METRICS_NAMESPACE": "Seller"}) == "Seller"
