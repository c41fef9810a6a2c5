"""The secrets the suite handles (registration tokens, buyers' contact details) and a scan of
everything the suite captured for them.

tests/conftest.py registers every token the Marketplace stand-in issues and every value typed
into an allow-listed sign-up field, records everything written by logging and every test's
captured stdout/stderr, and fails the session when any registered value shows up there.
Tests that handle secrets the hooks cannot see call ``register_token`` / ``register_contact``.

A scan with nothing registered would pass without looking, so a test that certainly handles
a kind of secret says so (``@pytest.mark.handles_secrets(TOKEN, CONTACT)``): when such a
test ran and the session ends with no secret of that kind registered, the hooks are broken
and the session fails (``unregistered``). A selection without such tests (a single unit
module, say) registers nothing and passes.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import quote, quote_plus

# Shorter values (an initial, a two-letter company) occur in ordinary log text by chance:
# scanning for them would only report coincidences. Values without a letter (a team size,
# a short phone number) match digits in ARNs, account ids and timestamps unless long.
MIN_SECRET_LENGTH = 6
MIN_LETTERLESS_LENGTH = 12
# How much text around a hit the report shows (the hit itself is masked).
_CONTEXT = 60


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    form: str
    where: str
    excerpt: str


def encoded_forms(value: str) -> dict[str, str]:
    """``value`` as it would appear in a log line: raw, URL-encoded, JSON- or repr-escaped."""
    forms = {
        "raw": value,
        "url-encoded": quote(value, safe=""),
        "form-encoded": quote_plus(value, safe=""),
        "url-encoded (path)": quote(value),
        "json-escaped": json.dumps(value)[1:-1],
        "json-escaped (unicode)": json.dumps(value, ensure_ascii=False)[1:-1],
        "json-escaped (slashes)": json.dumps(value)[1:-1].replace("/", "\\/"),
        "repr-escaped": repr(value)[1:-1],
    }
    distinct: dict[str, str] = {}
    for name, form in forms.items():
        if form not in distinct.values():
            distinct[name] = form
    return distinct


class SecretsRegistry:
    """Thread-safe set of secret values, each with the kind of secret it is."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: dict[str, str] = {}
        self._paused = 0

    def register(self, kind: str, value: str) -> None:
        if not isinstance(value, str) or len(value.strip()) < MIN_SECRET_LENGTH:
            return
        if not any(c.isalpha() for c in value) and len(value.strip()) < MIN_LETTERLESS_LENGTH:
            return
        with self._lock:
            if not self._paused:
                self._secrets.setdefault(value, kind)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No automatic registration inside: fuzz tests generate values that are no secrets
        (and short, common ones would only match by coincidence)."""
        with self._lock:
            self._paused += 1
        try:
            yield
        finally:
            with self._lock:
                self._paused -= 1

    def secrets(self) -> dict[str, str]:
        with self._lock:
            return dict(self._secrets)

    def scan(self, chunks: Iterable[tuple[str, str]]) -> list[Finding]:
        """Every place where a registered secret, in any encoded form, occurs in ``chunks``
        ((where, text) pairs)."""
        needles = [
            (kind, form_name, form)
            for value, kind in self.secrets().items()
            for form_name, form in encoded_forms(value).items()
        ]
        findings = []
        for where, text in chunks:
            for kind, form_name, form in needles:
                at = text.find(form)
                if at >= 0:
                    before = text[max(0, at - _CONTEXT) : at]
                    after = text[at + len(form) : at + len(form) + _CONTEXT]
                    excerpt = f"{before}<{kind}: {len(form)} chars>{after}".replace("\n", " ")
                    findings.append(Finding(kind, form_name, where, excerpt))
        return findings


registry = SecretsRegistry()

TOKEN = "registration token"
CONTACT = "contact detail"
KINDS = frozenset({TOKEN, CONTACT})


def unregistered(
    expected: Mapping[str, Iterable[str]], secrets: Mapping[str, str]
) -> dict[str, list[str]]:
    """Each kind some test that ran expects (``expected``: kind -> test ids) of which no secret
    was registered (``secrets``: value -> kind), with the tests that expected it."""
    registered = set(secrets.values())
    return {
        kind: sorted(tests) for kind, tests in expected.items() if kind not in registered and tests
    }


def register_token(token: str) -> None:
    """A registration token this test uses that the stand-in did not issue."""
    registry.register(TOKEN, token)


def register_contact(*values: str) -> None:
    """Contact details this test submits some way the sign-up hook does not see."""
    for value in values:
        registry.register(CONTACT, value)
