"""A per-invocation deadline that every AWS call checks before each attempt.

One registration makes several AWS calls in a row, each with its own timeouts and retries;
their worst cases add up past API Gateway's 29 s. The handler sets a deadline from the Lambda
context, and a botocore hook refuses to start an attempt after it, so the buyer always gets
our page instead of API Gateway's bare 504.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

from fulfillment.core.errors import DeadlineExceededError

# Long enough for one last attempt (connect 1 s + read 2 s) and rendering the page.
RESERVE_MILLIS = 4000
# Once a resolved registration is being parked (grace()), its SendMessage and the idempotency
# record's save may start until this much is left: each attempt takes at most connect 1 s +
# read 1 s, so they end before the invocation does.
GRACE_RESERVE_MILLIS = 2500


class _Budget:
    # A plain class: a dataclass costs ~0.3 ms to create at import on CPython 3.11, on
    # every function's cold path (docs/performance.md).
    __slots__ = ("deadline", "grace", "grace_deadline")

    def __init__(self, deadline: float, grace_deadline: float) -> None:
        self.deadline = deadline
        self.grace_deadline = grace_deadline
        self.grace = False


_budget: ContextVar[_Budget | None] = ContextVar("fulfillment_deadline", default=None)


class RemainingTime(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


@contextmanager
def budget(context: RemainingTime, reserve_millis: int = RESERVE_MILLIS) -> Iterator[None]:
    """Within this block, AWS calls start no attempt later than ``reserve_millis`` before
    the invocation's end."""
    now, left = time.monotonic(), context.get_remaining_time_in_millis()
    token = _budget.set(
        _Budget(
            deadline=now + max(left - reserve_millis, 0) / 1000,
            grace_deadline=now + max(left - min(GRACE_RESERVE_MILLIS, reserve_millis), 0) / 1000,
        )
    )
    try:
        yield
    finally:
        _budget.reset(token)


def grace() -> None:
    """From now on in this budget, attempts may start until the grace deadline: a resolved
    registration is being kept, and losing it costs more than a slower page."""
    budget = _budget.get()
    if budget is not None:
        budget.grace = True


def check(event_name: str = "", **_: Any) -> None:
    """botocore ``before-send`` hook: refuse an attempt that would start past the deadline.

    DeleteItem is let through: it is how Powertools removes the idempotency record of a
    failed attempt, and without it the buyer's "Try again" would find the token in progress.
    """
    budget = _budget.get()
    if budget is None:
        return
    deadline = budget.grace_deadline if budget.grace else budget.deadline
    if time.monotonic() < deadline:
        return
    if event_name.endswith(".DeleteItem"):
        return
    raise DeadlineExceededError("no time left for another AWS call")
