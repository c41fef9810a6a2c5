"""AWS calls per outcome: the operations each kind of request makes, counted by botocore's
events (API calls) and by the fake HTTP layer (attempts, so retries show)."""

from __future__ import annotations

import argparse
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from bench import REPO_ROOT, Report, Section
from bench.report import machine, markdown_table

DOCUMENT = REPO_ROOT / "docs" / "performance.md"
# (outcome, ResolveCustomer's behaviour in the fake, token)
OUTCOMES: tuple[tuple[str, str, str | None], ...] = (
    ("first registration", "ok", None),
    ("resubmission (same token)", "ok", "bench-calls-first"),
    ("invalid token", "invalid", None),
    ("expired token", "expired", None),
    ("throttled (ResolveCustomer)", "throttled", None),
    ("unknown product", "unknown-product", None),
    ("ResolveCustomer disabled", "disabled", None),
    ("malformed token", "ok", "bench bad\ttoken"),
)
DYNAMODB = ("PutItem", "UpdateItem", "GetItem", "DeleteItem", "Query", "TransactWriteItems")


def count_calls(options: dict[str, Any]) -> dict[str, Any]:
    """In the child: each outcome once, after the first registration of bench-calls-first."""
    import uuid

    from bench.overhead import Harness
    from tests.events import form_post

    harness = Harness()
    harness.serve(form_post("bench-calls-first"))
    results = {}
    for name, resolve, token in OUTCOMES:
        harness.fake.resolve = resolve
        before = Counter(harness.fake.attempts)
        _, _, status = harness.serve(form_post(token or f"bench-{uuid.uuid4().hex}"))
        attempts = Counter(harness.fake.attempts)
        attempts.subtract(before)
        results[name] = {
            "calls": dict(harness.clock.operations),
            "attempts": {k: v for k, v in attempts.items() if v},
            "status": status,
        }
    return results


def _verdict(name: str, calls: dict[str, int]) -> str:
    resolve = calls.get("ResolveCustomer", 0)
    dynamodb = sum(calls.get(op, 0) for op in DYNAMODB)
    if name == "first registration":
        return "pass" if resolve == 1 and dynamodb <= 4 else "**fail**"
    if name.startswith("resubmission"):
        return "pass" if resolve == 0 and dynamodb == 1 else "**fail**"
    return "(no budget)"


def run(args: argparse.Namespace) -> Report:
    from bench.overhead import run_child

    result = run_child("calls", {}, timeout=120)
    rows = []
    for name, _, _ in OUTCOMES:
        figures = result[name]
        calls = figures["calls"]
        listed = ", ".join(f"{op} x{n}" for op, n in sorted(calls.items())) or "none"
        retried = {op: n for op, n in figures["attempts"].items() if n != calls.get(op)}
        rows.append(
            [
                name,
                figures["status"],
                calls.get("ResolveCustomer", 0),
                sum(calls.get(op, 0) for op in DYNAMODB),
                listed,
                ", ".join(f"{op} {n} attempts" for op, n in retried.items()) or "—",
                _verdict(name, calls),
            ]
        )
    markdown = "\n".join(
        [
            f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}. Budget: a first "
            "registration makes 1 ResolveCustomer and ≤ 4 DynamoDB calls; a resubmission 1 "
            "DynamoDB call and no ResolveCustomer. Calls counted by botocore's "
            "`provide-client-params` event, attempts by the fake HTTP layer.",
            "",
            markdown_table(
                [
                    "outcome",
                    "status",
                    "ResolveCustomer",
                    "DynamoDB",
                    "operations",
                    "retries",
                    "budget",
                ],
                rows,
            ),
        ]
    )
    return Report(
        markdown=markdown,
        document=DOCUMENT,
        document_title="Performance",
        heading="## AWS calls per outcome",
        marker="calls",
    )


SECTION = Section(
    name="calls",
    help="AWS calls per registration outcome (botocore events)",
    add_arguments=lambda parser: None,
    run=run,
)


def section() -> str:
    return run(argparse.Namespace()).markdown
