"""What an error-table entry writes and counts: its log lines and its metric blobs, parsed."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest

# Keys every Powertools line may carry; anything else in a line is what the entry put there.
STANDARD_KEYS = frozenset(
    {
        "level",
        "location",
        "message",
        "timestamp",
        "service",
        "sampling_rate",
        "xray_trace_id",
        "cold_start",
        "function_name",
        "function_memory_size",
        "function_arn",
        "function_request_id",
        "correlation_id",
        "exception",
        "exception_name",
        "stack_trace",
    }
)


class Reported(NamedTuple):
    lines: list[dict[str, Any]]
    # (metric name, {dimension: value} besides the service)
    metrics: list[tuple[str, dict[str, str]]]

    def fields(self, line: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in line.items() if key not in STANDARD_KEYS}


def raise_and_report(error: BaseException, report: Callable[[BaseException], object]) -> None:
    """``report(error)`` where a handler calls it: while ``error`` is being handled."""
    try:
        raise error
    except BaseException as handled:
        report(handled)


def reported(call: Callable[[], object], capsys: pytest.CaptureFixture[str]) -> Reported:
    """Run ``call`` (an entry's report) and return what it logged and counted."""
    from fulfillment.core.observability import logger

    capsys.readouterr()
    stream = io.StringIO()
    previous = logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        call()
    finally:
        logger.registered_handler.setStream(previous)  # type: ignore[attr-defined]
    metrics = []
    for text in capsys.readouterr().out.splitlines():
        blob = json.loads(text)
        (directive,) = blob["_aws"]["CloudWatchMetrics"]
        (metric,) = directive["Metrics"]
        dimensions = {d: blob[d] for d in directive["Dimensions"][0] if d != "service"}
        metrics.append((metric["Name"], dimensions))
    return Reported([json.loads(text) for text in stream.getvalue().splitlines()], metrics)
