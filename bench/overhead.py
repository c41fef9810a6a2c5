"""Warm overhead: time in the project's own code per request (handler time minus the time
inside AWS client calls, from botocore's events), p50 and p99, against ``bench.fakes``
(the Marketplace stand-in and in-memory DynamoDB, EventBridge and SQS).

Each entry point runs in a child process of its own (the function's environment, ``lambda/``
on ``sys.path``), as in an execution environment of its own: nothing else in the benchmark
shares its clients, settings caches or environment. Except the api's, its requests are copies
of its first request in ``bench.coldstart.functions()``, against the same DynamoDB items.
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import hashlib
import importlib
import io
import json
import os
import pstats
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import REPO_ROOT, Report, Section, fakes
from bench.report import machine, markdown_table, percentile, speed_reference
from fulfillment import contract

if TYPE_CHECKING:
    from bench.coldstart import Function
    from local.marketplace import MarketplaceStandIn

Event = dict[str, Any]

DOCUMENT = REPO_ROOT / "docs" / "performance.md"
DEFAULT_REQUESTS = 2000
WARM_UP = 50
BUDGET_P50_MS = 0.5
BUDGET_P99_MS = 2.0
# The fulfillment API's name in bench.coldstart.functions().
API = "fulfillment (api)"
PROFILED = "first registration"


# --- Requests (built in the child, before any timing) -----------------------------------------
# Each builder gets the entry point's first request, how many, and the Marketplace stand-in
# (whose tokens a registration must carry).
Requests = Callable[[Event, int, "MarketplaceStandIn"], list[Event]]
RESUBMITTED_TOKEN = "bench-resubmitted-token"


def _first_registrations(_: Event, count: int, marketplace: MarketplaceStandIn) -> list[Event]:
    from tests.events import form_post

    return [form_post(marketplace.issue_token(fakes.BUYER.name)) for _ in range(count)]


def _resubmissions(_: Event, count: int, marketplace: MarketplaceStandIn) -> list[Event]:
    from tests.events import form_post

    token = marketplace.issue_token(fakes.BUYER.name, RESUBMITTED_TOKEN)
    return [form_post(token) for _ in range(count)]


def _malformed_tokens(_: Event, count: int, __: MarketplaceStandIn) -> list[Event]:
    from tests.events import form_post

    return [form_post("bench bad\ttoken") for _ in range(count)]


def _landing_page_gets(_: Event, count: int, __: MarketplaceStandIn) -> list[Event]:
    from tests.events import rest_event

    return [rest_event(method="GET", body=None, content_type=None) for _ in range(count)]


def _deliveries(
    first: Event,
    count: int,
    _: MarketplaceStandIn | None = None,
    body: Callable[[dict[str, Any], int], None] | None = None,
) -> list[Event]:
    """``count`` copies of ``first``, each delivered on its own: a new API Gateway request id,
    stream record id or SQS message id. ``body(message, n)`` changes the n-th copy's SQS
    message bodies (decoded JSON)."""
    events = []
    for n in range(count):
        event = copy.deepcopy(first)
        if "requestContext" in event:
            event["requestContext"]["requestId"] = str(uuid.uuid4())
        for record in event.get("Records", []):
            if "eventID" in record:
                record["eventID"] = uuid.uuid4().hex
            if "messageId" in record:
                record["messageId"] = str(uuid.uuid4())
            if body is not None:
                message = json.loads(record["body"])
                body(message, n)
                record["body"] = json.dumps(message)
                record["md5OfBody"] = hashlib.md5(record["body"].encode()).hexdigest()  # noqa: S324
        events.append(event)
    return events


def _new_notification(message: dict[str, Any], n: int) -> None:
    """The n-th License Updated notification of the license: a new id, a second after the
    previous one, so DynamoDB records each (the same one again would be a stale duplicate)."""
    at = datetime.fromisoformat(message["time"]) + timedelta(seconds=n)
    message["id"] = str(uuid.uuid4())
    message["time"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _new_parked_registration(message: dict[str, Any], n: int) -> None:
    """Another parked registration: a new registration id, registered 1 ms after the one
    before, so its session and customer are written (the same one again would be found
    recorded already, and an older one overtaken: a replay applies only what is newer)."""
    message["registration_id"] = secrets.token_urlsafe(24)
    registered_at = datetime.fromisoformat(message["registered_at"]) + timedelta(milliseconds=n + 1)
    message["registered_at"] = registered_at.isoformat()


def _new_notifications(first: Event, count: int, _: MarketplaceStandIn) -> list[Event]:
    return _deliveries(first, count, body=_new_notification)


def _new_parked_registrations(first: Event, count: int, _: MarketplaceStandIn) -> list[Event]:
    return _deliveries(first, count, body=_new_parked_registration)


@dataclass(frozen=True)
class Scenario:
    """One row: requests of one kind to one entry point, and what a healthy one answers."""

    name: str
    # The entry point, by its name in bench.coldstart.functions().
    function: str
    # ``count`` requests from the entry point's first request there.
    requests: Requests
    # The handler's answer to each: its HTTP status, "N failed" (N batchItemFailures), or
    # "done" (recovery: one message per invocation, no partial batch response).
    healthy: str
    # The AWS operations each makes, checked where the answer cannot tell a request that did
    # its work from one that skipped it (a batch record ignored answers "0 failed" too).
    calls: Mapping[str, int] | None = None


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("first registration", API, _first_registrations, "303"),
    Scenario("resubmission", API, _resubmissions, "303"),
    Scenario("malformed token", API, _malformed_tokens, "400"),
    Scenario("landing page GET", API, _landing_page_gets, "200"),
    Scenario("signup: sign-up page GET, live session", "signup", _deliveries, "200"),
    Scenario("handoff: GET /registrations/{id}, found", "handoff", _deliveries, "200"),
    Scenario(
        "publisher: 1 stream record → PutEvents",
        "publisher",
        _deliveries,
        "0 failed",
        {"PutEvents": 1},
    ),
    Scenario(
        "lifecycle: 1 License Updated notification, new each time, recorded",
        "lifecycle",
        _new_notifications,
        "0 failed",
        {"GetEntitlements": 1, "Query": 1, "GetItem": 1, "TransactWriteItems": 1},
    ),
    Scenario(
        "recovery: 1 parked registration, new each time, recorded",
        "recovery",
        _new_parked_registrations,
        "done",
        {"PutItem": 1, "UpdateItem": 1},
    ),
)


# --- The child ----------------------------------------------------------------------------


def run_child(task: str, options: dict[str, Any], timeout: float = 300) -> dict[str, Any]:
    """Run ``bench.overhead.child`` (or calls') in a fresh interpreter, in the environment
    ``bench.coldstart.function_environment`` gives every benchmark child; its JSON answer."""
    from bench import coldstart

    with tempfile.TemporaryDirectory(prefix="bench-warm-") as directory:
        out = Path(directory) / "result.json"
        child_environment = coldstart.child_environment(
            {
                "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "lambda"), str(REPO_ROOT)]),
                "BENCH_WARM": json.dumps({**options, "task": task, "out": str(out)}),
            }
        )
        done = subprocess.run(
            [sys.executable, "-c", "from bench.overhead import child; child()"],
            env=child_environment,
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0 or not out.exists():
            raise RuntimeError(f"benchmark child {task} failed:\n{done.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def answer_of(answer: Mapping[str, Any] | None) -> str:
    """A handler's answer in a word: its HTTP status, how many batch records failed, or
    "done" (a function without a partial batch response returned: it did not raise)."""
    if answer is None:
        return "done"
    if "statusCode" in answer:
        return str(answer["statusCode"])
    return f"{len(answer.get('batchItemFailures', []))} failed"


class Harness:
    """An entry point wired to the fakes and the call clock (in the child)."""

    def __init__(
        self,
        module: str = contract.FULFILLMENT_HANDLER.rsplit(".", 1)[0],
        items: Iterable[tuple[str, dict[str, Any]]] = (),
    ) -> None:
        from fulfillment.core import aws

        self.handler = importlib.import_module(module).lambda_handler
        self.fake = fakes.FakeAws(items=items)
        self.marketplace = self.fake.marketplace
        self.clock = fakes.CallClock()
        self.fake.install(aws.session())
        self.clock.install(aws.session())

    def serve(self, event: Event) -> tuple[float, float, str]:
        """Total seconds, seconds inside AWS client calls, the answer (``answer_of``)."""
        self.clock.reset()
        context = fakes.Context()
        started = time.perf_counter()
        answer = self.handler(event, context)
        total = time.perf_counter() - started
        return total, self.clock.seconds, answer_of(answer)


@cache
def _functions() -> dict[str, Function]:
    from bench import coldstart

    return {function.name: function for function in coldstart.functions()}


def _scenario(name: str) -> Scenario:
    return next(scenario for scenario in SCENARIOS if scenario.name == name)


def scenario_events(name: str, count: int, marketplace: MarketplaceStandIn) -> list[Event]:
    """``count`` real-shaped requests for a row, built before any timing."""
    scenario = _scenario(name)
    return scenario.requests(_functions()[scenario.function].events[0], count, marketplace)


def _overhead(options: dict[str, Any]) -> dict[str, Any]:
    """Every row of one entry point, then the profile of ``options["profile"]`` if any."""
    function = _functions()[options["function"]]
    harness = Harness(function.module, function.items)
    if function.name == API:
        # The record resubmissions replay.
        harness.serve(scenario_events("resubmission", 1, harness.marketplace)[0])
    requests = int(options["requests"])
    results: dict[str, Any] = {}
    for scenario in SCENARIOS:
        if scenario.function != function.name:
            continue
        events = scenario_events(scenario.name, WARM_UP + requests, harness.marketplace)
        for event in events[:WARM_UP]:
            harness.serve(event)
        own, totals, statuses, calls = [], [], set(), set()
        for event in events[WARM_UP:]:
            total, inside, status = harness.serve(event)
            own.append(total - inside)
            totals.append(total)
            statuses.add(status)
            calls.add(json.dumps(harness.clock.operations, sort_keys=True))
        results[scenario.name] = {
            "own": own,
            "total": totals,
            "statuses": sorted(statuses),
            "calls": [json.loads(made) for made in sorted(calls)],
        }
    if options.get("profile"):
        results["profile"] = _profile(harness, options["profile"], int(options["profile_requests"]))
    return results


def _profile(harness: Harness, name: str, count: int) -> str:
    profiler = cProfile.Profile()
    events = scenario_events(name, count, harness.marketplace)
    profiler.enable()
    for event in events:
        harness.handler(event, fakes.Context())
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    # The project's code and what it calls outside botocore, by cumulative time.
    project = r"fulfillment/|aws_lambda_powertools/|markupsafe/"
    stats.sort_stats("cumulative").print_stats(project, 30)
    return text.getvalue()


def child() -> None:
    options = json.loads(os.environ["BENCH_WARM"])
    tasks: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {"overhead": _overhead}
    if options["task"] == "calls":
        from bench import calls

        tasks["calls"] = calls.count_calls
    result = tasks[options["task"]](options)
    Path(options["out"]).write_text(json.dumps(result))


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"


def _profile_lines(profile: str, limit: int = 25) -> str:
    site = str(Path(json.__file__).parent.parent)
    lines = [
        line.rstrip().replace(str(REPO_ROOT) + "/", "").replace(site, "…")
        for line in profile.splitlines()
        if line.strip()
    ]
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    return "\n".join(lines[start : start + limit + 1])


def run(args: argparse.Namespace) -> Report:
    requests = max(int(getattr(args, "warm_requests", DEFAULT_REQUESTS)), 100)
    profiled = min(requests, 500)
    result: dict[str, Any] = {}
    # One child per entry point, one after the other, in the rows' order.
    for function in dict.fromkeys(scenario.function for scenario in SCENARIOS):
        options: dict[str, Any] = {"function": function, "requests": requests}
        if function == _scenario(PROFILED).function:
            options.update(profile=PROFILED, profile_requests=profiled)
        result |= run_child("overhead", options, timeout=600)
    rows, problems = [], []
    for scenario in SCENARIOS:
        figures = result[scenario.name]
        p50, p99 = percentile(figures["own"], 50), percentile(figures["own"], 99)
        verdict = (
            "pass" if p50 * 1000 <= BUDGET_P50_MS and p99 * 1000 <= BUDGET_P99_MS else "**fail**"
        )
        rows.append(
            [
                scenario.name,
                len(figures["own"]),
                _ms(p50),
                _ms(p99),
                _ms(percentile(figures["total"], 50)),
                _ms(percentile(figures["total"], 99)),
                verdict,
                ", ".join(figures["statuses"]),
            ]
        )
        if figures["statuses"] != [scenario.healthy]:
            problems.append(
                f"{scenario.name}: answered {figures['statuses']}, not {scenario.healthy!r} "
                "(a healthy request's answer)"
            )
        if scenario.calls is not None and figures["calls"] != [dict(scenario.calls)]:
            problems.append(
                f"{scenario.name}: made the AWS calls {figures['calls']}, not "
                f"{dict(scenario.calls)} (a healthy request's)"
            )
    markdown = "\n".join(
        [
            f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}; load average "
            f"{os.getloadavg()[0]:.2f} and speed reference {speed_reference():.1f} ms "
            "(`bench.report.speed_reference`, lower is faster) at the end. Budget: own code "
            f"p50 ≤ {BUDGET_P50_MS} ms "
            f"and p99 ≤ {BUDGET_P99_MS} ms. Own code = handler wall time minus the time inside "
            "AWS client calls (botocore `provide-client-params` → `after-call`, which includes "
            "botocore's validation, serialization, signing and parsing of the fake's real-shaped "
            f"answers). {WARM_UP} warm-up requests per row; Powertools logs and EMF go to "
            "/dev/null. The first four rows are the fulfillment API; every entry point runs in "
            "a process of its own. Except the API's, the requests are copies of the cold-start "
            "section's first requests, each with its own request or message id; the lifecycle "
            "notifications and the parked registrations are new ones each time, so each is "
            "recorded (the same one again would be a duplicate). Status: the HTTP status, the "
            "batch functions' `batchItemFailures`, or done (recovery returned: one message per "
            "invocation, no partial batch response).",
            "",
            markdown_table(
                [
                    "request",
                    "n",
                    "own p50 ms",
                    "own p99 ms",
                    "total p50 ms",
                    "total p99 ms",
                    "budget",
                    "status",
                ],
                rows,
            ),
            "",
            f"<details><summary>cProfile, {profiled} warm first registrations, "
            "fulfillment/Powertools/MarkupSafe functions by cumulative time (botocore's share "
            "included in the callers)</summary>",
            "",
            "```",
            _profile_lines(result["profile"], 30),
            "```",
            "</details>",
        ]
    )
    return Report(
        markdown=markdown,
        document=DOCUMENT,
        document_title="Performance",
        heading="## Warm overhead",
        marker="overhead",
        problems=problems,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--warm-requests",
        type=int,
        default=DEFAULT_REQUESTS,
        help=f"requests per warm-overhead row (default {DEFAULT_REQUESTS})",
    )


SECTION = Section(
    name="overhead",
    help="warm per-request time in the project's own code (p50/p99)",
    add_arguments=add_arguments,
    run=run,
)
