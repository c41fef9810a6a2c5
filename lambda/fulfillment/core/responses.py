"""API Gateway proxy responses with the security headers every answer carries."""

from __future__ import annotations

import json
from typing import Any

from fulfillment.contract import SECURITY_HEADERS

__all__ = [
    "JSON_CSP",
    "REDIRECT_CSP",
    "SECURITY_HEADERS",
    "caller",
    "html",
    "json_answer",
    "see_other",
]

# Redirects have no body: nothing at all may load.
REDIRECT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
# A JSON answer loads nothing and may be framed by nothing.
JSON_CSP = REDIRECT_CSP


def see_other(location: str) -> dict[str, Any]:
    return {
        "statusCode": 303,
        "headers": {
            **SECURITY_HEADERS,
            "Content-Security-Policy": REDIRECT_CSP,
            "Location": location,
        },
        "body": "",
        "isBase64Encoded": False,
    }


def html(
    status: int, body: str, csp: str, extra_headers: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {
            **SECURITY_HEADERS,
            "Content-Security-Policy": csp,
            "Content-Type": "text/html; charset=utf-8",
            **(extra_headers or {}),
        },
        "body": body,
        "isBase64Encoded": False,
    }


def json_answer(
    status: int, body: dict[str, Any], extra_headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """A JSON answer of the seller's IAM-authorized API (hand-off, usage)."""
    return {
        "statusCode": status,
        "headers": {
            **SECURITY_HEADERS,
            "Content-Security-Policy": JSON_CSP,
            "Content-Type": "application/json",
            **(extra_headers or {}),
        },
        "body": json.dumps(body, separators=(",", ":")),
        "isBase64Encoded": False,
    }


def caller(request_context: dict[str, Any]) -> str | None:
    """Who signed the request, as API Gateway's IAM authorization saw it."""
    identity = request_context.get("identity") or {}
    value = identity.get("userArn") or identity.get("caller")
    return str(value) if value else None
