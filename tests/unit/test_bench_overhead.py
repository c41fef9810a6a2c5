"""The warm-overhead rows: one per kind of request of every entry point, each request a
delivery of its own, and the handler's answer read as the table shows it."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

import pytest

from bench import coldstart, fakes
from bench.overhead import SCENARIOS, Scenario, answer_of, scenario_events


def test_every_entry_point_has_a_row() -> None:
    measured = {scenario.function for scenario in SCENARIOS}
    assert measured == {function.name for function in coldstart.functions()}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda scenario: scenario.name)
def test_each_request_is_a_delivery_of_its_own(scenario: Scenario) -> None:
    events = scenario_events(scenario.name, 3)
    assert len(events) == 3
    ids = [
        event.get("requestContext", {}).get("requestId")
        or tuple(r.get("messageId") or r.get("eventID") for r in event["Records"])
        for event in events
    ]
    assert len(set(ids)) == 3


def _bodies(name: str, count: int) -> list[dict[str, object]]:
    bodies = []
    for event in scenario_events(name, count):
        (record,) = event["Records"]
        assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()  # noqa: S324
        bodies.append(json.loads(record["body"]))
    return bodies


def test_lifecycle_notifications_are_new_ones_each_later_than_the_last() -> None:
    (name,) = [s.name for s in SCENARIOS if s.function == "lifecycle"]
    bodies = _bodies(name, 4)
    times = [datetime.fromisoformat(str(body["time"])) for body in bodies]
    assert times == sorted(set(times))
    assert len({body["id"] for body in bodies}) == 4


def test_parked_registrations_are_new_ones() -> None:
    (name,) = [s.name for s in SCENARIOS if s.function == "recovery"]
    bodies = _bodies(name, 4)
    assert len({body["registration_id"] for body in bodies}) == 4
    assert {body["product_code"] for body in bodies} == {fakes.PRODUCT_CODE}


@pytest.mark.parametrize(
    ("answer", "shown"),
    [
        ({"statusCode": 303, "headers": {}}, "303"),
        ({"batchItemFailures": []}, "0 failed"),
        ({"batchItemFailures": [{"itemIdentifier": "a"}, {"itemIdentifier": "b"}]}, "2 failed"),
        (None, "done"),
    ],
)
def test_answers_read_as_the_status_column(answer: dict[str, object] | None, shown: str) -> None:
    assert answer_of(answer) == shown
