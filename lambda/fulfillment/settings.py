"""The function's configuration: read from the environment here and nowhere else.

Each field maps one to one to an UPPER_SNAKE environment variable. Values are validated once
and cached; a missing or invalid value raises ConfigurationError naming the variable, so the
request fails with a clear ERROR log instead of a bare KeyError at import time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from urllib.parse import urlsplit

from fulfillment.errors import ConfigurationError

# Environment variable names: the contract with infra/ (a test compares them with the stack).
CUSTOMERS_TABLE_NAME = "CUSTOMERS_TABLE_NAME"
IDEMPOTENCY_TABLE_NAME = "IDEMPOTENCY_TABLE_NAME"
PRODUCT_CODES = "PRODUCT_CODES"
REGISTRATION_URL = "REGISTRATION_URL"
TRIAL_REGISTRATION_URL = "TRIAL_REGISTRATION_URL"
MARKETPLACE_REGION = "MARKETPLACE_REGION"
SESSION_TTL_SECONDS = "SESSION_TTL_SECONDS"

ENVIRONMENT_KEYS = frozenset(
    {
        CUSTOMERS_TABLE_NAME,
        IDEMPOTENCY_TABLE_NAME,
        PRODUCT_CODES,
        REGISTRATION_URL,
        TRIAL_REGISTRATION_URL,
        MARKETPLACE_REGION,
        SESSION_TTL_SECONDS,
    }
)

DEFAULT_MARKETPLACE_REGION = "us-east-1"
DEFAULT_SESSION_TTL_SECONDS = 3600
MIN_SESSION_TTL_SECONDS = 60
MAX_SESSION_TTL_SECONDS = 7 * 24 * 3600

_TABLE_NAME = re.compile(r"[a-zA-Z0-9_.-]{3,255}")
_PRODUCT_CODE = re.compile(r"[-a-zA-Z0-9/=:_.@]{1,255}")
_REGION = re.compile(r"[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d{1,2}")
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True, slots=True)
class Settings:
    customers_table_name: str
    idempotency_table_name: str
    product_codes: frozenset[str]
    registration_url: str
    trial_registration_url: str | None
    marketplace_region: str
    session_ttl_seconds: int


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Validate ``environ``; raise ConfigurationError naming the first faulty variable."""
    return Settings(
        customers_table_name=_table_name(environ, CUSTOMERS_TABLE_NAME),
        idempotency_table_name=_table_name(environ, IDEMPOTENCY_TABLE_NAME),
        product_codes=_product_codes(environ),
        registration_url=_redirect_target(environ, REGISTRATION_URL, required=True) or "",
        trial_registration_url=_redirect_target(environ, TRIAL_REGISTRATION_URL, required=False),
        marketplace_region=_region(environ),
        session_ttl_seconds=_session_ttl(environ),
    )


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
    if not _TABLE_NAME.fullmatch(value):
        raise ConfigurationError(name, "is not a valid DynamoDB table name")
    return value


def _product_codes(environ: Mapping[str, str]) -> frozenset[str]:
    codes = frozenset(code.strip() for code in _required(environ, PRODUCT_CODES).split(","))
    codes = codes - {""}
    if not codes:
        raise ConfigurationError(PRODUCT_CODES, "lists no product code")
    for code in codes:
        if not _PRODUCT_CODE.fullmatch(code):
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


def _region(environ: Mapping[str, str]) -> str:
    value = environ.get(MARKETPLACE_REGION, "").strip() or DEFAULT_MARKETPLACE_REGION
    if not _REGION.fullmatch(value):
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
