"""The suite-wide log scan finds a registered secret in every form a log line could hold it."""

from __future__ import annotations

import json
from urllib.parse import quote, quote_plus

import pytest

from tests.secrets_registry import SecretsRegistry

TOKEN = "AbC+dEf/GhI+jKl/MnO=="
EMAIL = "zoë.buyer@example.com"


@pytest.mark.parametrize(
    "logged",
    [
        f"token={TOKEN}",
        f"GET /?x-amzn-marketplace-token={quote(TOKEN, safe='')}",
        f"body=x-amzn-marketplace-token={quote_plus(TOKEN)}",
        json.dumps({"event": {"body": TOKEN}}).replace("/", "\\/"),  # escaped slashes
        json.dumps({"email": EMAIL}),
        f"{{'email': {EMAIL!r}}}",
    ],
)
def test_a_secret_is_found_raw_url_encoded_and_json_escaped(logged: str) -> None:
    registry = SecretsRegistry()
    registry.register("registration token", TOKEN)
    registry.register("contact detail", EMAIL)

    findings = registry.scan([("log", logged)])

    assert len(findings) >= 1
    assert all(TOKEN not in f.excerpt and EMAIL not in f.excerpt for f in findings)


def test_short_and_digit_only_values_are_not_scanned_for_and_pausing_registers_nothing() -> None:
    registry = SecretsRegistry()
    registry.register("contact detail", "Ada")
    registry.register("contact detail", "123456")
    with registry.paused():
        registry.register("registration token", TOKEN)

    assert registry.secrets() == {}
    assert registry.scan([("log", f"Ada 123456 {TOKEN}")]) == []
