"""`make bench`'s children against the fakes: the AWS-calls section end to end, with the
Marketplace answered by the same stand-in as `make run`."""

from __future__ import annotations

from bench.calls import DYNAMODB, OUTCOMES
from bench.overhead import run_child


def test_the_calls_section_sees_each_outcome_as_the_function_answers_it() -> None:
    # When the calls child serves every outcome once (its own process, the fakes under botocore)
    result = run_child("calls", {}, timeout=120)

    # Then each outcome has its status, and the budgets' counts are what the docs show
    statuses = {name: result[name]["status"] for name, *_ in OUTCOMES}
    assert statuses == {
        "first registration": "303",
        "resubmission (same token)": "303",
        "invalid token": "400",
        "expired token": "400",
        "throttled (ResolveCustomer)": "503",
        "unknown product": "403",
        "ResolveCustomer disabled": "503",
        "malformed token": "400",
    }
    first = result["first registration"]["calls"]
    assert first["ResolveCustomer"] == 1
    assert sum(first.get(op, 0) for op in DYNAMODB) == 4
    assert "ResolveCustomer" not in result["resubmission (same token)"]["calls"]
    # botocore's retries show as attempts of the one throttled call
    throttled = result["throttled (ResolveCustomer)"]
    assert throttled["calls"]["ResolveCustomer"] == 1
    assert throttled["attempts"]["ResolveCustomer"] > 1
