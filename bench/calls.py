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
FIRST_TOKEN = "bench-calls-first"
# (outcome, the Marketplace stand-in's faults, the token: a fresh one of this stand-in
# customer, or this literal token)
OUTCOMES: tuple[tuple[str, dict[str, Any], str | None, str | None], ...] = (
    ("first registration", {}, "new-style", None),
    ("resubmission (same token)", {}, None, FIRST_TOKEN),
    ("invalid token", {}, None, "bench-never-issued-token"),
    ("expired token", {"expire_after_seconds": 0}, "new-style", None),
    ("throttled (ResolveCustomer)", {"throttle_rate": 1.0}, "new-style", None),
    ("unknown product", {}, "other-product", None),
    ("ResolveCustomer disabled", {"disabled": True}, "new-style", None),
    ("malformed token", {}, None, "bench bad\ttoken"),
)
DYNAMODB = ("PutItem", "UpdateItem", "GetItem", "DeleteItem", "Query", "TransactWriteItems")


def count_calls(options: dict[str, Any]) -> dict[str, Any]:
    """In the child: each outcome once, after the first registration of FIRST_TOKEN."""
    from bench.overhead import Harness
    from tests.events import form_post

    harness = Harness()
    marketplace = harness.marketplace
    harness.serve(form_post(marketplace.issue_token("new-style", FIRST_TOKEN)))
    results = {}
    for name, faults, customer, token in OUTCOMES:
        marketplace.set_faults(**faults)
        if customer is not None:
            token = marketplace.issue_token(customer)
        before = Counter(harness.fake.attempts)
        _, _, status = harness.serve(form_post(str(token)))
        marketplace.reset()
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
    for name, *_ in OUTCOMES:
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
