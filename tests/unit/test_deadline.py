"""The per-invocation deadline that bounds a registration's AWS calls."""

from __future__ import annotations

import pytest

from fulfillment.core import deadline
from fulfillment.core.errors import DeadlineExceededError


class Remaining:
    def __init__(self, millis: int) -> None:
        self.millis = millis

    def get_remaining_time_in_millis(self) -> int:
        return self.millis


def test_calls_may_start_before_the_deadline() -> None:
    with deadline.budget(Remaining(20_000)):
        deadline.check(event_name="before-send.dynamodb.PutItem")


def test_no_attempt_starts_within_the_reserve() -> None:
    with deadline.budget(Remaining(deadline.RESERVE_MILLIS)), pytest.raises(DeadlineExceededError):
        deadline.check(event_name="before-send.meteringmarketplace.ResolveCustomer")


def test_cleanup_of_the_idempotency_record_is_let_through() -> None:
    with deadline.budget(Remaining(0)):
        deadline.check(event_name="before-send.dynamodb.DeleteItem")


def test_outside_an_invocation_there_is_no_deadline() -> None:
    with deadline.budget(Remaining(0)):
        pass

    deadline.check(event_name="before-send.dynamodb.PutItem")
