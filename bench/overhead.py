"""Warm overhead: time in the project's own code per request (handler time minus the time
inside AWS client calls, from botocore's events), p50 and p99, against ``bench.fakes``.

Runs in a child process (the function's environment, ``lambda/`` on ``sys.path``), so nothing
else in the benchmark shares its clients, caches or environment.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import REPO_ROOT, Report, Section, fakes
from bench.report import machine, markdown_table, percentile

DOCUMENT = REPO_ROOT / "docs" / "performance.md"
DEFAULT_REQUESTS = 2000
WARM_UP = 50
BUDGET_P50_MS = 0.5
BUDGET_P99_MS = 2.0
SCENARIOS = ("first registration", "resubmission", "malformed token", "landing page GET")
PROFILED = "first registration"


def run_child(task: str, options: dict[str, Any], timeout: float = 300) -> dict[str, Any]:
    """Run ``bench.overhead.child`` (or calls') in a fresh interpreter; its JSON answer."""
    with tempfile.TemporaryDirectory(prefix="bench-warm-") as directory:
        out = Path(directory) / "result.json"
        environment = fakes.function_environment(dict(os.environ))
        environment.update(
            {
                "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "lambda"), str(REPO_ROOT)]),
                "BENCH_WARM": json.dumps({**options, "task": task, "out": str(out)}),
            }
        )
        done = subprocess.run(
            [sys.executable, "-c", "from bench.overhead import child; child()"],
            env=environment,
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


class Harness:
    """The fulfillment handler wired to the fakes and the call clock (in the child)."""

    def __init__(self) -> None:
        from fulfillment import api, aws

        self.handler = api.lambda_handler
        self.fake = fakes.FakeAws()
        self.clock = fakes.CallClock()
        self.fake.install(aws.session())
        self.clock.install(aws.session())

    def serve(self, event: dict[str, Any]) -> tuple[float, float, int]:
        """Total seconds, seconds inside AWS client calls, status."""
        self.clock.reset()
        context = fakes.Context()
        started = time.perf_counter()
        answer = self.handler(event, context)
        total = time.perf_counter() - started
        return total, self.clock.seconds, int(answer["statusCode"])


def scenario_events(name: str, count: int) -> list[dict[str, Any]]:
    """``count`` real-shaped events for a scenario, built before any timing."""
    from tests.events import form_post, rest_event

    if name == "first registration":
        return [form_post(f"bench-{uuid.uuid4().hex}") for _ in range(count)]
    if name == "resubmission":
        return [form_post("bench-resubmitted-token") for _ in range(count)]
    if name == "malformed token":
        return [form_post("bench bad\ttoken") for _ in range(count)]
    if name == "landing page GET":
        return [rest_event(method="GET", body=None, content_type=None) for _ in range(count)]
    raise ValueError(name)


def _overhead(options: dict[str, Any]) -> dict[str, Any]:
    harness = Harness()
    harness.serve(scenario_events("resubmission", 1)[0])  # the record resubmissions replay
    requests = int(options["requests"])
    results: dict[str, Any] = {}
    for name in SCENARIOS:
        for event in scenario_events(name, WARM_UP):
            harness.serve(event)
        own, totals, statuses = [], [], set()
        for event in scenario_events(name, requests):
            total, inside, status = harness.serve(event)
            own.append(total - inside)
            totals.append(total)
            statuses.add(status)
        results[name] = {"own": own, "total": totals, "statuses": sorted(statuses)}
    profiler = cProfile.Profile()
    events = scenario_events(PROFILED, int(options["profile_requests"]))
    profiler.enable()
    for event in events:
        harness.handler(event, fakes.Context())
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    # The project's code and what it calls outside botocore, by cumulative time.
    stats.sort_stats("cumulative").print_stats(r"fulfillment/|aws_lambda_powertools/|jinja2/", 30)
    results["profile"] = text.getvalue()
    return results


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
    result = run_child(
        "overhead", {"requests": requests, "profile_requests": min(requests, 500)}, timeout=600
    )
    rows, problems = [], []
    for name in SCENARIOS:
        figures = result[name]
        p50, p99 = percentile(figures["own"], 50), percentile(figures["own"], 99)
        verdict = (
            "pass" if p50 * 1000 <= BUDGET_P50_MS and p99 * 1000 <= BUDGET_P99_MS else "**fail**"
        )
        rows.append(
            [
                name,
                len(figures["own"]),
                _ms(p50),
                _ms(p99),
                _ms(percentile(figures["total"], 50)),
                _ms(percentile(figures["total"], 99)),
                verdict,
                ", ".join(str(s) for s in figures["statuses"]),
            ]
        )
        if len(figures["statuses"]) != 1:
            problems.append(f"{name}: mixed statuses {figures['statuses']}")
    markdown = "\n".join(
        [
            f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}; load average "
            f"{os.getloadavg()[0]:.2f} at the end. Budget: own code p50 ≤ {BUDGET_P50_MS} ms "
            f"and p99 ≤ {BUDGET_P99_MS} ms. Own code = handler wall time minus the time inside "
            "AWS client calls (botocore `provide-client-params` → `after-call`, which includes "
            "botocore's validation, serialization, signing and parsing of the fake's real-shaped "
            f"answers). {WARM_UP} warm-up requests per row; Powertools logs and EMF go to "
            "/dev/null.",
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
            f"<details><summary>cProfile, {min(requests, 500)} warm first registrations, "
            "fulfillment/Powertools/Jinja2 functions by cumulative time (botocore's share "
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


def section() -> str:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return run(parser.parse_args([])).markdown
