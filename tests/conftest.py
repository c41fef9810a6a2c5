"""Test-wide environment (no real AWS credentials or endpoints, ever) and the log scan."""

from __future__ import annotations

import base64
import logging
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest

from tests.secrets_registry import CONTACT, KINDS, TOKEN, registry, unregistered

# Set before any test module imports the function package, whose Logger and Metrics read
# these at import time.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "fulfillment",
        "POWERTOOLS_METRICS_NAMESPACE": "Fulfillment",
        "POWERTOOLS_LOG_LEVEL": "DEBUG",
    }
)
for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
    os.environ.pop(name, None)


# --------------------------------------------------------------------------- the log scan
# Tokens and contact details must never reach a log. Everything written by logging (any
# logger, DEBUG and up, with its extra fields; the function's Powertools JSON lines as they
# are formatted) and every test's captured stdout/stderr (pytest's fd-level capture, which
# includes the local stack's worker processes) is kept; at the end of the session it is
# scanned for every registered secret (tests/secrets_registry.py).

# Test infrastructure that never runs in a Lambda function: the moto server's own request
# logging holds stored items, contact details included.
_NOT_FUNCTION_LOGGERS = ("moto", "werkzeug", "botocore.credentials")
_captured: list[tuple[str, str]] = []
_captured_lock = threading.Lock()
_scan_findings: list[Any] = []
# kind of secret -> ids of the tests that ran and certainly handle one (handles_secrets)
_expected: dict[str, set[str]] = {}
_unregistered: dict[str, list[str]] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "handles_secrets(*kinds): the test certainly handles secrets of these kinds "
        f"({', '.join(sorted(KINDS))}); the log scan fails if none was registered",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    for marker in item.iter_markers("handles_secrets"):
        unknown = set(marker.args) - KINDS
        if unknown or not marker.args:
            raise pytest.UsageError(f"{item.nodeid}: handles_secrets takes kinds of {KINDS}")
        for kind in marker.args:
            _expected.setdefault(kind, set()).add(item.nodeid)


def _keep(where: str, text: str) -> None:
    if text:
        with _captured_lock:
            _captured.append((where, text))


class _RecordingHandler(logging.Handler):
    """Keeps every record: its formatted line, or its message and every attribute."""

    def __init__(self, where: str, formatter: logging.Formatter | None = None) -> None:
        super().__init__(logging.DEBUG)
        self.where = where
        self.raw = formatter is None
        if formatter is not None:
            self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(_NOT_FUNCTION_LOGGERS):
            return
        try:
            if self.raw:
                text = f"{record.name} {record.levelname} {record.getMessage()} {record.__dict__}"
                if record.exc_info and record.exc_info[1] is not None:
                    text += "\n" + logging.Formatter().formatException(record.exc_info)
            else:
                text = self.format(record)
        except Exception:  # a record that cannot be formatted is scanned as far as it goes
            text = f"{record.name} {record.msg!r} {record.args!r}"
        _keep(self.where, text)


@pytest.fixture(scope="session", autouse=True)
def _log_scan() -> Iterator[None]:
    """Record all logging for the scan and register secrets where the suite creates them."""
    from fulfillment.core.observability import logger
    from fulfillment.signup import contacts
    from local.functions import Workers
    from local.marketplace import MarketplaceStandIn

    root = logging.getLogger()
    previous_level = root.level
    root.setLevel(logging.DEBUG)
    everything = _RecordingHandler("logging")
    root.addHandler(everything)
    # The function's own lines exactly as its handler writes them (JSON with appended keys),
    # whatever stream a test swaps in for that handler.
    powertools = _RecordingHandler("function log", logger.registered_formatter)
    logger._logger.addHandler(powertools)

    issue_token = MarketplaceStandIn.issue_token
    validate_contact = contacts.validate_contact

    def issue_and_register(self: MarketplaceStandIn, *args: Any, **kwargs: Any) -> str:
        token = issue_token(self, *args, **kwargs)
        registry.register(TOKEN, token)
        return token

    def validate_and_register(posted: Any, *args: Any, **kwargs: Any) -> Any:
        form = validate_contact(posted, *args, **kwargs)
        for value in form.values.values():
            registry.register(CONTACT, value)
        return form

    # The local stack runs the sign-up function in worker processes: its gateway (in this
    # process) sees the posted form before a worker does.
    submit = Workers.submit

    def submit_and_register(self: Workers, fn: Any, *args: Any) -> Any:
        for event in args:
            if isinstance(event, dict) and str(event.get("path", "")).endswith("/signup"):
                _register_posted_contact(event)
        return submit(self, fn, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MarketplaceStandIn, "issue_token", issue_and_register)
        patch.setattr(contacts, "validate_contact", validate_and_register)
        patch.setattr(Workers, "submit", submit_and_register)
        yield
    logger._logger.removeHandler(powertools)
    root.removeHandler(everything)
    root.setLevel(previous_level)


def captured_output() -> list[tuple[str, str]]:
    """What the scan has captured so far: (where, text) pairs."""
    with _captured_lock:
        return list(_captured)


def _register_posted_contact(event: dict[str, Any]) -> None:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    for name, values in parse_qs(body, keep_blank_values=True).items():
        if name not in ("registration", "csrf_token"):
            for value in values:
                registry.register(CONTACT, value)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for stream, text in (("stdout", report.capstdout), ("stderr", report.capstderr)):
        _keep(f"{report.nodeid} [{report.when}] {stream}", text)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _scan_findings.extend(registry.scan(captured_output()))
    _unregistered.update(unregistered(_expected, registry.secrets()))
    if (_scan_findings or _unregistered) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _unregistered:
        terminalreporter.section("log scan: nothing to look for", sep="=", red=True)
        for kind, tests in sorted(_unregistered.items()):
            terminalreporter.write_line(
                f"no {kind} was registered, yet {len(tests)} test(s) handling one ran (e.g. "
                f"{tests[0]}): the registering hooks in tests/conftest.py no longer see them"
            )
        print(
            f"log scan failed: no {' or '.join(sorted(_unregistered))} registered", file=sys.stderr
        )
    secrets = registry.secrets()
    kinds = sorted(set(secrets.values()))
    counts = ", ".join(f"{sum(k == kind for k in secrets.values())} {kind}s" for kind in kinds)
    size = sum(len(text) for _, text in _captured)
    if not _scan_findings:
        terminalreporter.write_line(
            f"log scan: none of {counts} found in {size:,} characters of logs and output"
            if counts
            else "log scan: no secrets registered"
        )
        return
    terminalreporter.section("log scan: secrets in logs or output", sep="=", red=True)
    for finding in _scan_findings[:50]:
        terminalreporter.write_line(f"{finding.where}: {finding.kind} ({finding.form})")
        terminalreporter.write_line(f"    ...{finding.excerpt}...")
    if len(_scan_findings) > 50:
        terminalreporter.write_line(f"... and {len(_scan_findings) - 50} more")
    print(f"log scan failed: {len(_scan_findings)} findings", file=sys.stderr)
