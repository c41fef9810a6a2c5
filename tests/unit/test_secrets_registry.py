"""The suite-wide log scan finds a registered secret in every form a log line could hold it,
and fails a session whose secret-handling tests registered nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from tests.fresh_process import REPOSITORY
from tests.secrets_registry import CONTACT as CONTACT_KIND
from tests.secrets_registry import TOKEN as TOKEN_KIND
from tests.secrets_registry import SecretsRegistry, unregistered

LAMBDA = REPOSITORY / "lambda"

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


# --------------------------------------------------------------------------- nothing to look for


def test_a_kind_some_test_expects_is_unregistered_until_one_such_secret_is_registered() -> None:
    expected = {TOKEN_KIND: {"t.py::b", "t.py::a"}, CONTACT_KIND: {"t.py::c"}}

    assert unregistered(expected, {}) == {
        TOKEN_KIND: ["t.py::a", "t.py::b"],
        CONTACT_KIND: ["t.py::c"],
    }
    assert unregistered(expected, {TOKEN: TOKEN_KIND}) == {CONTACT_KIND: ["t.py::c"]}
    assert unregistered(expected, {TOKEN: TOKEN_KIND, EMAIL: CONTACT_KIND}) == {}


def test_nothing_is_unregistered_when_no_test_expected_a_secret() -> None:
    # A selection such as tests/unit/test_deadline.py alone: no token, and nothing expected
    assert unregistered({}, {}) == {}


_MARKED_TEST = """
import pytest
from tests.secrets_registry import TOKEN, register_token

@pytest.mark.handles_secrets(TOKEN)
def test_handles_a_token():
    {body}

def test_handles_nothing():
    pass
"""


@pytest.mark.parametrize(
    ("body", "passes"),
    [
        ("register_token('AbC+dEf/GhI+jKl/MnO==')", True),
        ("pass  # the token never reached the registry", False),
    ],
    ids=["registered", "not registered"],
)
def test_a_session_whose_marked_test_registered_nothing_fails(
    tmp_path: Path, body: str, passes: bool
) -> None:
    # Given a session running the suite's log-scan hooks over one marked test and one other
    test_file = tmp_path / "test_marked.py"
    test_file.write_text(_MARKED_TEST.format(body=body))

    # When it runs
    hooks = ["-p", "no:cacheprovider", "-p", "tests.conftest", "--rootdir", str(tmp_path)]
    done = subprocess.run(  # noqa: S603 - this interpreter, the test's own files
        [sys.executable, "-m", "pytest", "-q", *hooks, str(test_file)],
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(LAMBDA), str(REPOSITORY)])},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    # Then both tests pass, and the session fails exactly when no token was registered
    assert "2 passed" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
    assert (done.returncode == 0) == passes, done.stdout[-2000:]
    if not passes:
        assert "no registration token was registered" in done.stdout
        assert "test_marked.py::test_handles_a_token" in done.stdout
