"""Reading a function's configuration from the environment: the checks every function shares.

Each capability has its own settings module (a NamedTuple whose fields map one to one to the
contract's UPPER_SNAKE variables, its ENVIRONMENT_KEYS, and a cached get_*), built from these.
A missing or invalid value raises ConfigurationError naming the variable, so the request fails
with a clear ERROR log, not a bare KeyError. Only settings modules read os.environ.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from fulfillment.contract import (
    DEFAULT_METRICS_NAMESPACE,
    POWERTOOLS_METRICS_NAMESPACE,
    PRODUCT_CODES,
)
from fulfillment.core.errors import ConfigurationError

# Pattern sources, not compiled patterns: every function validates only its own few
# variables, once per container, so each pattern is compiled on first use (re.fullmatch
# caches it) instead of all of them on every cold start's import.
_TABLE_NAME = r"[a-zA-Z0-9_.-]{3,255}"
_PRODUCT_CODE = r"[-a-zA-Z0-9/=:_.@]{1,255}"
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_QUEUE_PATH = r"/\d{12}/[A-Za-z0-9_-]{1,80}"


def metrics_namespace(environ: Mapping[str, str] = os.environ) -> str:
    """The CloudWatch namespace of the functions' metrics.

    Powertools reads the variable itself, but without a namespace every metric flush raises
    and the invocation fails before it can answer; the functions fall back to a default.
    """
    return environ.get(POWERTOOLS_METRICS_NAMESPACE, "").strip() or DEFAULT_METRICS_NAMESPACE


def required(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise ConfigurationError(name, "is not set")
    return value


def table_name(environ: Mapping[str, str], name: str) -> str:
    value = required(environ, name)
    if not re.fullmatch(_TABLE_NAME, value):
        raise ConfigurationError(name, "is not a valid DynamoDB table name")
    return value


def product_codes(environ: Mapping[str, str]) -> frozenset[str]:
    codes = frozenset(code.strip() for code in required(environ, PRODUCT_CODES).split(","))
    codes = codes - {""}
    if not codes:
        raise ConfigurationError(PRODUCT_CODES, "lists no product code")
    for code in codes:
        if not re.fullmatch(_PRODUCT_CODE, code):
            raise ConfigurationError(PRODUCT_CODES, "holds a value that is not a product code")
    return codes


def redirect_target(environ: Mapping[str, str], name: str) -> str | None:
    """An optional absolute URL buyers are sent to; None when unset."""
    value = environ.get(name, "").strip()
    if not value:
        return None
    parts = urlsplit(value)
    # Buyers are sent here with a registration id: only HTTPS, except loopback for the local stack.
    loopback = parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS
    secure = parts.scheme == "https" or loopback
    if not secure or not parts.hostname or parts.fragment or parts.username or parts.password:
        raise ConfigurationError(name, "must be an absolute https:// URL without a fragment")
    return value


def queue_url(environ: Mapping[str, str], name: str) -> str:
    value = required(environ, name)
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
