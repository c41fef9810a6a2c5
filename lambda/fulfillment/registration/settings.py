"""The fulfillment URL function's settings, read from the environment once."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import cache
from typing import NamedTuple

from fulfillment.contract import (
    CUSTOMERS_TABLE_NAME,
    DEFAULT_MARKETPLACE_REGION,
    DEFAULT_SESSION_TTL_SECONDS,
    IDEMPOTENCY_TABLE_NAME,
    MARKETPLACE_REGION,
    MAX_SESSION_TTL_SECONDS,
    MIN_SESSION_TTL_SECONDS,
    PRODUCT_CODES,
    RECOVERY_QUEUE_URL,
    REGISTRATION_URL,
    SESSION_TTL_SECONDS,
    TRIAL_REGISTRATION_URL,
)
from fulfillment.core import settings as check
from fulfillment.core.errors import ConfigurationError

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

_REGION = r"[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d{1,2}"


class Settings(NamedTuple):
    customers_table_name: str
    idempotency_table_name: str
    product_codes: frozenset[str]
    # None: hand the buyer to the built-in sign-up page (GET /signup).
    registration_url: str | None
    trial_registration_url: str | None
    marketplace_region: str
    session_ttl_seconds: int
    # Where a resolved registration waits when its writes fail (the recovery processor replays).
    recovery_queue_url: str


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Validate ``environ``; raise ConfigurationError naming the first faulty variable."""
    return Settings(
        customers_table_name=check.table_name(environ, CUSTOMERS_TABLE_NAME),
        idempotency_table_name=check.table_name(environ, IDEMPOTENCY_TABLE_NAME),
        product_codes=check.product_codes(environ),
        registration_url=check.redirect_target(environ, REGISTRATION_URL),
        trial_registration_url=check.redirect_target(environ, TRIAL_REGISTRATION_URL),
        marketplace_region=_region(environ),
        session_ttl_seconds=_session_ttl(environ),
        recovery_queue_url=check.queue_url(environ, RECOVERY_QUEUE_URL),
    )


@cache
def get_settings() -> Settings:
    """The process-wide settings, validated on first use (a failure is not cached)."""
    return load_settings(os.environ)


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
