"""API Gateway proxy responses with the security headers every answer carries."""

from __future__ import annotations

from typing import Any

from fulfillment.contract import SECURITY_HEADERS

__all__ = ["REDIRECT_CSP", "SECURITY_HEADERS", "html", "see_other"]

# Redirects have no body: nothing at all may load.
REDIRECT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"


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
