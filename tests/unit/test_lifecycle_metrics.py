"""The lifecycle metric as CloudWatch receives it."""

from __future__ import annotations

import json

import pytest

from fulfillment.contract import MetricName
from fulfillment.core import observability


def test_the_metric_carries_exactly_its_two_dimensions_and_the_service(
    capsys: pytest.CaptureFixture[str],
) -> None:
    observability.count_with(
        MetricName.LIFECYCLE_NOTIFICATION,
        {"EventType": "License Updated", "Outcome": "applied"},
    )

    (blob,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    (directive,) = blob["_aws"]["CloudWatchMetrics"]
    assert directive["Dimensions"] == [["EventType", "Outcome", "service"]]
    assert directive["Metrics"] == [{"Name": "LifecycleNotification", "Unit": "Count"}]
