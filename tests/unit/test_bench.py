"""`make bench`'s own arithmetic and bookkeeping: what it writes into the docs, its percentiles,
the cold-start schedule and noise interval, the warm-overhead requests, the fake DynamoDB."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from bench import coldstart
from bench.coldstart import Function, Runs, _schedule
from bench.fakes import FakeAws
from bench.overhead import SCENARIOS, scenario_events
from bench.report import percentile, write_between_markers

START, END = "<!-- load-run:start -->", "<!-- load-run:end -->"


def write(document: Path, content: str) -> str:
    return write_between_markers(
        document, "load-run", content, title="Reliability", heading="## Load run"
    )


def test_figures_replace_only_what_the_markers_enclose_or_are_appended(tmp_path: Path) -> None:
    marked = tmp_path / "marked.md"
    marked.write_text(f"# Reliability\n\nfaults\n\n{START}\nold figures\n{END}\n\nafter\n")
    unmarked = tmp_path / "unmarked.md"
    unmarked.write_text("# Reliability\n\nfaults\n")

    write(marked, "new figures\n")
    write(unmarked, "figures")
    write(tmp_path / "docs" / "new.md", "figures")

    assert (
        marked.read_text() == f"# Reliability\n\nfaults\n\n{START}\nnew figures\n{END}\n\nafter\n"
    )
    assert (
        unmarked.read_text()
        == f"# Reliability\n\nfaults\n\n## Load run\n\n{START}\nfigures\n{END}\n"
    )
    created = (tmp_path / "docs" / "new.md").read_text()
    assert created == f"# Reliability\n\n## Load run\n\n{START}\nfigures\n{END}\n"


@pytest.mark.parametrize(
    "text",
    [f"{START}\nonly a start\n", f"{END}\n{START}\n", f"{START}\n{END}\n{START}\n{END}\n"],
)
def test_broken_markers_are_refused_and_the_document_is_left_alone(
    tmp_path: Path, text: str
) -> None:
    document = tmp_path / "reliability.md"
    document.write_text(text)

    with pytest.raises(ValueError, match="load-run"):
        write(document, "figures")
    assert document.read_text() == text


def test_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]

    assert [percentile(values, p) for p in (50, 99, 100)] == [50, 99, 100]
    assert percentile([3.0], 99) == 3.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_the_ratio_is_of_medians_with_a_reproducible_interval_around_it() -> None:
    def runs(floor: list[float], handler: list[float]) -> Runs:
        return Runs([{"seconds": s} for s in floor], [{"seconds": s} for s in handler])

    noisy = runs([0.20, 0.26, 0.21, 0.30, 0.22, 0.24], [0.23, 0.29, 0.25, 0.33, 0.24, 0.27])
    low, high = noisy.ratio_interval()

    assert runs([1.0, 2.0, 9.0], [2.0, 3.0, 30.0]).ratio == pytest.approx(1.5)
    assert low < noisy.ratio < high
    assert noisy.ratio_interval() == (low, high)
    steady = runs([0.2] * 10, [0.22] * 10)
    assert steady.ratio_interval() == (steady.ratio, steady.ratio)


def test_each_round_runs_every_handler_and_one_floor_per_client_set_in_a_new_order() -> None:
    functions = [
        Function("api", "m.api", ("dynamodb", "meteringmarketplace"), []),
        Function("signup", "m.signup", ("dynamodb",), []),
        Function("handoff", "m.handoff", ("dynamodb",), []),
        Function("publisher", "m.publisher", ("events", "sqs"), []),
    ]

    schedule = _schedule(functions, 20)

    rounds = [schedule[start : start + 7] for start in range(0, len(schedule), 7)]
    assert len(rounds) == 20
    for one_round in rounds:
        assert sorted(f.name for mode, f in one_round if mode == "handler") == [
            "api",
            "handoff",
            "publisher",
            "signup",
        ]
        # The dynamodb floor is shared by signup and handoff
        floors = sorted(f.clients for mode, f in one_round if mode == "floor")
        assert floors == [("dynamodb",), ("dynamodb", "meteringmarketplace"), ("events", "sqs")]
    assert len({tuple((m, f.name) for m, f in one_round) for one_round in rounds}) > 10
    assert _schedule(functions, 20) == schedule  # seeded: the same order every time


def test_every_entry_point_has_rows_of_requests_each_delivered_on_its_own() -> None:
    marketplace = FakeAws().marketplace
    assert {s.function for s in SCENARIOS} == {f.name for f in coldstart.functions()}
    for scenario in SCENARIOS:
        events = scenario_events(scenario.name, 3, marketplace)
        ids = [
            event.get("requestContext", {}).get("requestId")
            or tuple(r.get("messageId") or r.get("eventID") for r in event["Records"])
            for event in events
        ]
        assert len(set(ids)) == 3, scenario.name


def _bodies(function: str) -> list[dict[str, Any]]:
    (name,) = [s.name for s in SCENARIOS if s.function == function]
    bodies = []
    for event in scenario_events(name, 4, FakeAws().marketplace):
        (record,) = event["Records"]
        assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()  # noqa: S324
        bodies.append(json.loads(record["body"]))
    return bodies


def test_lifecycle_and_recovery_rows_send_new_ones_each_time() -> None:
    # The same notification or parked registration again would be a duplicate, not recorded
    notifications = _bodies("lifecycle")
    times = [datetime.fromisoformat(str(body["time"])) for body in notifications]
    assert times == sorted(set(times))
    assert len({body["id"] for body in notifications}) == 4
    assert len({body["registration_id"] for body in _bodies("recovery")}) == 4


def test_the_fake_dynamodb_hands_powertools_the_live_idempotency_record() -> None:
    # Given a boto3 client answered by the fakes (no socket)
    session = boto3.session.Session(
        region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    FakeAws().install(session)
    dynamodb = session.client("dynamodb")
    put: dict[str, Any] = {
        "TableName": "idempotency",
        "ConditionExpression": "attribute_not_exists(#id) OR #expiry < :now",
        "ExpressionAttributeNames": {
            "#id": "id",
            "#expiry": "expiration",
            "#in_progress_expiry": "in_progress_expiration",
            "#status": "status",
        },
        "ExpressionAttributeValues": {":now": {"N": "1000"}, ":now_in_millis": {"N": "1000000"}},
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }

    def record(status: str, expiry: int) -> dict[str, Any]:
        return {"id": {"S": "key"}, "status": {"S": status}, "expiration": {"N": str(expiry)}}

    # When a completed record is put again while it lives, and after an expired one
    dynamodb.put_item(Item=record("COMPLETED", 5000), **put)
    with pytest.raises(ClientError) as raised:
        dynamodb.put_item(Item=record("INPROGRESS", 6000), **put)
    dynamodb.put_item(Item=record("COMPLETED", 10), TableName="idempotency")
    dynamodb.put_item(Item=record("INPROGRESS", 6000), **put)

    # Then the failed put carries the live record, as DynamoDB's does; the expired one is replaced
    assert raised.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert raised.value.response["Item"]["status"] == {"S": "COMPLETED"}  # type: ignore[typeddict-item]
    item = dynamodb.get_item(TableName="idempotency", Key={"id": {"S": "key"}})["Item"]
    assert item["status"] == {"S": "INPROGRESS"}
