"""The lifecycle metric's names and bounded dimension values, as infra/metrics.py mirrors them."""

from __future__ import annotations

import json

import pytest

from fulfillment import observability
from fulfillment.notifications import UNKNOWN_EVENT_TYPE, NotificationType
from fulfillment.subscriptions import Outcome
from infra import metrics


def test_event_types_and_outcomes_are_those_the_function_emits() -> None:
    assert metrics.LIFECYCLE_NOTIFICATION == observability.MetricName.LIFECYCLE_NOTIFICATION
    assert metrics.EVENT_TYPE_DIMENSION == observability.EVENT_TYPE_DIMENSION
    assert metrics.OUTCOME_DIMENSION == observability.OUTCOME_DIMENSION
    assert set(metrics.LIFECYCLE_EVENT_TYPES) == {t.value for t in NotificationType} | {
        UNKNOWN_EVENT_TYPE
    }
    assert set(metrics.LIFECYCLE_OUTCOMES) == {o.value for o in Outcome}
    assert metrics.LIFECYCLE_FAILED_OUTCOME == Outcome.FAILED


def test_the_metric_carries_exactly_its_two_dimensions_and_the_service(
    capsys: pytest.CaptureFixture[str],
) -> None:
    observability.count_with(
        observability.MetricName.LIFECYCLE_NOTIFICATION,
        {"EventType": "License Updated", "Outcome": "applied"},
    )

    (blob,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    (directive,) = blob["_aws"]["CloudWatchMetrics"]
    assert directive["Dimensions"] == [["EventType", "Outcome", "service"]]
    assert directive["Metrics"] == [{"Name": "LifecycleNotification", "Unit": "Count"}]
