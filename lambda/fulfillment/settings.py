"""The functions' configuration: read from the environment here and nowhere else.

Each function has its own settings class whose fields map one to one to UPPER_SNAKE
environment variables (FUNCTION_ENVIRONMENT_KEYS; a test compares them with the stack).
Values are validated once and cached; a missing or invalid value raises ConfigurationError
naming the variable, so the request fails with a clear ERROR log, not a bare KeyError.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from functools import cache
from typing import NamedTuple
from urllib.parse import urlsplit

from fulfillment.errors import ConfigurationError

# Environment variable names: the contract with infra/ (a test compares them with the stack).
CUSTOMERS_TABLE_NAME = "CUSTOMERS_TABLE_NAME"
CONTACTS_TABLE_NAME = "CONTACTS_TABLE_NAME"
IDEMPOTENCY_TABLE_NAME = "IDEMPOTENCY_TABLE_NAME"
PRODUCT_CODES = "PRODUCT_CODES"
REGISTRATION_URL = "REGISTRATION_URL"
TRIAL_REGISTRATION_URL = "TRIAL_REGISTRATION_URL"
MARKETPLACE_REGION = "MARKETPLACE_REGION"
SESSION_TTL_SECONDS = "SESSION_TTL_SECONDS"
SIGNUP_COMPLETE_URL = "SIGNUP_COMPLETE_URL"
SIGNUP_EXTRA_FIELDS = "SIGNUP_EXTRA_FIELDS"
EVENT_BUS_NAME = "EVENT_BUS_NAME"
PUBLISH_RETRY_QUEUE_URL = "PUBLISH_RETRY_QUEUE_URL"
RECOVERY_QUEUE_URL = "RECOVERY_QUEUE_URL"

# The fulfillment URL function (fulfillment.api).
ENVIRONMENT_KEYS = frozenset(
    {
        CUSTOMERS_TABLE_NAME,
        IDEMPOTENCY_TABLE_NAME,
        PRODUCT_CODES,
        REGISTRATION_URL,
        TRIAL_REGISTRATION_URL,
        MARKETPLACE_REGION,
        SESSION_TTL_SECONDS,
        RECOVERY_QUEUE_URL,
    }
)

DEFAULT_MARKETPLACE_REGION = "us-east-1"
DEFAULT_SESSION_TTL_SECONDS = 3600
MIN_SESSION_TTL_SECONDS = 60
MAX_SESSION_TTL_SECONDS = 7 * 24 * 3600

# Pattern sources, not compiled patterns: every function imports this module but validates
# only its own few variables, once per container, so each pattern is compiled on first use
# (re.fullmatch caches it) instead of all of them on every cold start's import.
_TABLE_NAME = r"[a-zA-Z0-9_.-]{3,255}"
_PRODUCT_CODE = r"[-a-zA-Z0-9/=:_.@]{1,255}"
_REGION = r"[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d{1,2}"
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# A bus name, or its ARN (PutEvents accepts both).
_EVENT_BUS = r"(arn:aws[a-z-]*:events:[a-z0-9-]+:\d{12}:event-bus/)?[/.\-_A-Za-z0-9]{1,256}"
_QUEUE_PATH = r"/\d{12}/[A-Za-z0-9_-]{1,80}"


class Settings(NamedTuple):
    customers_table_name: str
    idempotency_table_name: str
    product_codes: frozenset[str]
    # None: hand the buyer to the built-in sign-up page (GET /signup).
    registration_url: str | None
    trial_registration_url: str | None
    marketplace_region: str
    session_ttl_seconds: int
    # Where a resolved registration waits when its writes fail (fulfillment.recovery replays).
    recovery_queue_url: str


# The sign-up page (fulfillment.signup): the only function that gets the contacts table.
SIGNUP_ENVIRONMENT_KEYS = frozenset(
    {CUSTOMERS_TABLE_NAME, CONTACTS_TABLE_NAME, SIGNUP_COMPLETE_URL, SIGNUP_EXTRA_FIELDS}
)
# The seller hand-off API (fulfillment.handoff).
HANDOFF_ENVIRONMENT_KEYS = frozenset({CUSTOMERS_TABLE_NAME})
# The registration events publisher (fulfillment.publisher).
PUBLISHER_ENVIRONMENT_KEYS = frozenset({EVENT_BUS_NAME, PUBLISH_RETRY_QUEUE_URL})
# The subscription lifecycle processor (fulfillment.lifecycle).
LIFECYCLE_ENVIRONMENT_KEYS = frozenset({CUSTOMERS_TABLE_NAME, PRODUCT_CODES})
# The recovery processor (fulfillment.recovery): replays parked registrations.
RECOVERY_ENVIRONMENT_KEYS = frozenset({CUSTOMERS_TABLE_NAME})

FUNCTION_ENVIRONMENT_KEYS: dict[str, frozenset[str]] = {
    "fulfillment.api.lambda_handler": ENVIRONMENT_KEYS,
    "fulfillment.signup.lambda_handler": SIGNUP_ENVIRONMENT_KEYS,
    "fulfillment.handoff.lambda_handler": HANDOFF_ENVIRONMENT_KEYS,
    "fulfillment.publisher.lambda_handler": PUBLISHER_ENVIRONMENT_KEYS,
    "fulfillment.lifecycle.lambda_handler": LIFECYCLE_ENVIRONMENT_KEYS,
    "fulfillment.recovery.lambda_handler": RECOVERY_ENVIRONMENT_KEYS,
}

MAX_EXTRA_FIELDS = 10
MAX_FIELD_LENGTH = 2000
_FIELD_NAME = r"[a-z][a-z0-9_]{0,39}"
# Names the built-in form uses itself; an extra field may not shadow them.
RESERVED_FIELD_NAMES = frozenset(
    {"company", "contact_name", "email", "phone", "registration", "csrf_token"}
)


class ExtraField(NamedTuple):
    """A seller-defined field of the sign-up form."""

    name: str
    label: str
    required: bool
    max_length: int


class SignupSettings(NamedTuple):
    customers_table_name: str
    contacts_table_name: str
    signup_complete_url: str | None
    signup_extra_fields: tuple[ExtraField, ...]


class HandoffSettings(NamedTuple):
    customers_table_name: str


class PublisherSettings(NamedTuple):
    event_bus_name: str
    publish_retry_queue_url: str


class LifecycleSettings(NamedTuple):
    customers_table_name: str
    # Notifications for other products are ignored (counted), not failed.
    product_codes: frozenset[str]


class RecoverySettings(NamedTuple):
    customers_table_name: str


def load_recovery_settings(environ: Mapping[str, str]) -> RecoverySettings:
    """Validate the recovery processor's variables; raise ConfigurationError on the first."""
    return RecoverySettings(customers_table_name=_table_name(environ, CUSTOMERS_TABLE_NAME))


@cache
def get_recovery_settings() -> RecoverySettings:
    return load_recovery_settings(os.environ)


def load_lifecycle_settings(environ: Mapping[str, str]) -> LifecycleSettings:
    """Validate the lifecycle processor's variables; raise ConfigurationError on the first."""
    return LifecycleSettings(
        customers_table_name=_table_name(environ, CUSTOMERS_TABLE_NAME),
        product_codes=_product_codes(environ),
    )


@cache
def get_lifecycle_settings() -> LifecycleSettings:
    return load_lifecycle_settings(os.environ)


def load_signup_settings(environ: Mapping[str, str]) -> SignupSettings:
    """Validate the sign-up page's variables; raise ConfigurationError naming the first fault."""
    return SignupSettings(
        customers_table_name=_table_name(environ, CUSTOMERS_TABLE_NAME),
        contacts_table_name=_table_name(environ, CONTACTS_TABLE_NAME),
        signup_complete_url=_redirect_target(environ, SIGNUP_COMPLETE_URL, required=False),
        signup_extra_fields=_extra_fields(environ),
    )


def load_handoff_settings(environ: Mapping[str, str]) -> HandoffSettings:
    return HandoffSettings(customers_table_name=_table_name(environ, CUSTOMERS_TABLE_NAME))


def load_publisher_settings(environ: Mapping[str, str]) -> PublisherSettings:
    """Validate the publisher's variables; raise ConfigurationError naming the first fault."""
    return PublisherSettings(
        event_bus_name=_event_bus(environ),
        publish_retry_queue_url=_queue_url(environ, PUBLISH_RETRY_QUEUE_URL),
    )


@cache
def get_signup_settings() -> SignupSettings:
    return load_signup_settings(os.environ)


@cache
def get_handoff_settings() -> HandoffSettings:
    return load_handoff_settings(os.environ)


@cache
def get_publisher_settings() -> PublisherSettings:
    return load_publisher_settings(os.environ)


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Validate ``environ``; raise ConfigurationError naming the first faulty variable."""
    return Settings(
        customers_table_name=_table_name(environ, CUSTOMERS_TABLE_NAME),
        idempotency_table_name=_table_name(environ, IDEMPOTENCY_TABLE_NAME),
        product_codes=_product_codes(environ),
        registration_url=_redirect_target(environ, REGISTRATION_URL, required=False),
        trial_registration_url=_redirect_target(environ, TRIAL_REGISTRATION_URL, required=False),
        marketplace_region=_region(environ),
        session_ttl_seconds=_session_ttl(environ),
        recovery_queue_url=_queue_url(environ, RECOVERY_QUEUE_URL),
    )


# Powertools reads this itself, but without a namespace every metric flush raises and the
# invocation fails before it can answer; the functions fall back to this default instead.
POWERTOOLS_METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"
DEFAULT_METRICS_NAMESPACE = "Fulfillment"


def metrics_namespace(environ: Mapping[str, str] = os.environ) -> str:
    """The CloudWatch namespace of the functions' metrics."""
    return environ.get(POWERTOOLS_METRICS_NAMESPACE, "").strip() or DEFAULT_METRICS_NAMESPACE


@cache
def get_settings() -> Settings:
    """The process-wide settings, validated on first use (a failure is not cached)."""
    return load_settings(os.environ)


def _required(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise ConfigurationError(name, "is not set")
    return value


def _table_name(environ: Mapping[str, str], name: str) -> str:
    value = _required(environ, name)
    if not re.fullmatch(_TABLE_NAME, value):
        raise ConfigurationError(name, "is not a valid DynamoDB table name")
    return value


def _product_codes(environ: Mapping[str, str]) -> frozenset[str]:
    codes = frozenset(code.strip() for code in _required(environ, PRODUCT_CODES).split(","))
    codes = codes - {""}
    if not codes:
        raise ConfigurationError(PRODUCT_CODES, "lists no product code")
    for code in codes:
        if not re.fullmatch(_PRODUCT_CODE, code):
            raise ConfigurationError(PRODUCT_CODES, "holds a value that is not a product code")
    return codes


def _redirect_target(environ: Mapping[str, str], name: str, *, required: bool) -> str | None:
    value = environ.get(name, "").strip()
    if not value:
        if required:
            raise ConfigurationError(name, "is not set")
        return None
    parts = urlsplit(value)
    # Buyers are sent here with a registration id: only HTTPS, except loopback for the local stack.
    loopback = parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS
    secure = parts.scheme == "https" or loopback
    if not secure or not parts.hostname or parts.fragment or parts.username or parts.password:
        raise ConfigurationError(name, "must be an absolute https:// URL without a fragment")
    return value


def _event_bus(environ: Mapping[str, str]) -> str:
    value = _required(environ, EVENT_BUS_NAME)
    if not re.fullmatch(_EVENT_BUS, value):
        raise ConfigurationError(EVENT_BUS_NAME, "is not an event bus name or ARN")
    return value


def _queue_url(environ: Mapping[str, str], name: str) -> str:
    value = _required(environ, name)
    parts = urlsplit(value)
    # https, except a loopback endpoint for the local stack and tests.
    loopback = parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS
    if (
        not (parts.scheme == "https" or loopback)
        or not parts.hostname
        or not re.fullmatch(_QUEUE_PATH, parts.path)
        or parts.query
        or parts.fragment
    ):
        raise ConfigurationError(name, "is not an SQS queue URL")
    return value


def _region(environ: Mapping[str, str]) -> str:
    value = environ.get(MARKETPLACE_REGION, "").strip() or DEFAULT_MARKETPLACE_REGION
    if not re.fullmatch(_REGION, value):
        raise ConfigurationError(MARKETPLACE_REGION, "is not an AWS region name")
    return value


def _session_ttl(environ: Mapping[str, str]) -> int:
    raw = environ.get(SESSION_TTL_SECONDS, "").strip()
    if not raw:
        return DEFAULT_SESSION_TTL_SECONDS
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(SESSION_TTL_SECONDS, "is not a whole number") from None
    if not MIN_SESSION_TTL_SECONDS <= value <= MAX_SESSION_TTL_SECONDS:
        raise ConfigurationError(
            SESSION_TTL_SECONDS,
            f"must be between {MIN_SESSION_TTL_SECONDS} and {MAX_SESSION_TTL_SECONDS}",
        )
    return value


def _extra_fields(environ: Mapping[str, str]) -> tuple[ExtraField, ...]:
    """SIGNUP_EXTRA_FIELDS: a JSON list of {"name", "label", "required", "max_length"}."""
    raw = environ.get(SIGNUP_EXTRA_FIELDS, "").strip()
    if not raw:
        return ()
    try:
        items = json.loads(raw)
    except ValueError:
        raise ConfigurationError(SIGNUP_EXTRA_FIELDS, "is not valid JSON") from None
    if not isinstance(items, list) or len(items) > MAX_EXTRA_FIELDS:
        raise ConfigurationError(
            SIGNUP_EXTRA_FIELDS, f"must be a JSON list of at most {MAX_EXTRA_FIELDS} fields"
        )
    fields: list[ExtraField] = []
    for item in items:
        if not isinstance(item, dict):
            raise ConfigurationError(SIGNUP_EXTRA_FIELDS, "lists something that is not an object")
        name, label = item.get("name"), item.get("label")
        required, max_length = item.get("required", False), item.get("max_length", 200)
        if not isinstance(name, str) or not re.fullmatch(_FIELD_NAME, name):
            raise ConfigurationError(
                SIGNUP_EXTRA_FIELDS, "has a field name that is not lower_snake_case (max 40)"
            )
        if name in RESERVED_FIELD_NAMES or any(f.name == name for f in fields):
            raise ConfigurationError(SIGNUP_EXTRA_FIELDS, f"repeats or reserves the name {name!r}")
        if not isinstance(label, str) or not 0 < len(label.strip()) <= 100:
            raise ConfigurationError(SIGNUP_EXTRA_FIELDS, f"field {name!r} needs a label")
        if not isinstance(required, bool):
            raise ConfigurationError(SIGNUP_EXTRA_FIELDS, f"field {name!r}: required is a boolean")
        if (
            not isinstance(max_length, int)
            or isinstance(max_length, bool)
            or not 1 <= max_length <= MAX_FIELD_LENGTH
        ):
            raise ConfigurationError(
                SIGNUP_EXTRA_FIELDS, f"field {name!r}: max_length must be 1 to {MAX_FIELD_LENGTH}"
            )
        fields.append(ExtraField(name, label.strip(), required, max_length))
    return tuple(fields)
