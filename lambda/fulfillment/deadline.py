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

from fulfillment.errors import DeadlineExceededError

# Long enough for one last attempt (connect 1 s + read 2 s) and rendering the page.
RESERVE_MILLIS = 4000

_deadline: ContextVar[float | None] = ContextVar("fulfillment_deadline", default=None)


class RemainingTime(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


@contextmanager
def budget(context: RemainingTime, reserve_millis: int = RESERVE_MILLIS) -> Iterator[None]:
    """Within this block, AWS calls start no attempt later than ``reserve_millis`` before
    the invocation's end."""
    remaining = context.get_remaining_time_in_millis() - reserve_millis
    token = _deadline.set(time.monotonic() + max(remaining, 0) / 1000)
    try:
        yield
    finally:
        _deadline.reset(token)


def check(event_name: str = "", **_: Any) -> None:
    """botocore ``before-send`` hook: refuse an attempt that would start past the deadline.

    DeleteItem is let through: it is how Powertools removes the idempotency record of a
    failed attempt, and without it the buyer's "Try again" would find the token in progress.
    """
    deadline = _deadline.get()
    if deadline is None or time.monotonic() < deadline:
        return
    if event_name.endswith(".DeleteItem"):
        return
    raise DeadlineExceededError("no time left for another AWS call")
