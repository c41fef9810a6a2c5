"""Parking a resolved registration whose writes failed, and the parked message, against fakes
(the replay itself: tests/integration/test_fault_injection.py, against real conditional writes)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from fulfillment.customers.models import (
    MalformedParkedRegistrationError,
    ParkedRegistration,
    ResolvedCustomer,
)
from fulfillment.registration.errors import RecoveryUnavailableError
from fulfillment.registration.use_case import register
from tests.unit.fakes import FakeCustomerStore, FakeMarketplace, FakeRecoveryQueue

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
PRODUCT = "prod-abc"
TOKEN = "tok+en/secret=="
CUSTOMER = ResolvedCustomer(
    PRODUCT, "111122223333", "arn:aws:license-manager::111122223333:license:l-1", None, "agmt-1"
)


def _register(store: FakeCustomerStore, queue: FakeRecoveryQueue):  # type: ignore[no-untyped-def]
    return register(
        TOKEN,
        marketplace=FakeMarketplace({TOKEN: CUSTOMER}),
        customers=store,
        recovery=queue,
        product_codes={PRODUCT},
        now=NOW,
        session_ttl_seconds=3600,
        request_id="req-1",
    )


@pytest.mark.parametrize("failing", ["session", "customer"])
def test_a_failed_write_parks_the_resolved_registration(failing: str) -> None:
    # Given DynamoDB refuses one of the two writes
    store, queue = FakeCustomerStore(failing={failing}), FakeRecoveryQueue()

    # When the token is registered
    outcome = _register(store, queue)

    # Then the outcome is deferred and the queue holds everything needed to finish it
    assert outcome.deferred is True
    (parked,) = queue.parked
    assert parked.registration_id == outcome.session_id
    assert parked.customer == CUSTOMER
    assert parked.session_expires_at == outcome.session_expires_at
    assert parked.registered_at == NOW.isoformat()
    assert parked.request_id == "req-1"
    assert TOKEN not in parked.to_message()


def test_when_the_queue_refuses_too_registration_raises() -> None:
    store, queue = FakeCustomerStore(failing={"customer"}), FakeRecoveryQueue(down=True)

    with pytest.raises(RecoveryUnavailableError):
        _register(store, queue)


def test_parked_message_round_trips_and_strangers_are_refused() -> None:
    store, queue = FakeCustomerStore(failing={"session"}), FakeRecoveryQueue()
    _register(store, queue)
    (parked,) = queue.parked

    assert ParkedRegistration.from_message(parked.to_message()) == parked
    message = json.loads(parked.to_message())
    for broken in (
        "not json",
        json.dumps({**message, "version": 99}),
        json.dumps({**message, "token": TOKEN}),
        json.dumps({**message, "registration_id": ""}),
        json.dumps({**message, "session_expires_at": "soon"}),
        parked._replace(license_arn=None).to_message(),  # no identity left
    ):
        with pytest.raises(MalformedParkedRegistrationError):
            ParkedRegistration.from_message(broken)


def test_a_message_parked_before_version_2_still_replays_without_a_record_to_complete() -> None:
    # Given a message as parked before it named the idempotency record (version 1)
    store, queue = FakeCustomerStore(failing={"session"}), FakeRecoveryQueue()
    _register(store, queue)
    (parked,) = queue.parked
    message = json.loads(parked.to_message())
    del message["idempotency_key"], message["outcome"]

    # Then it is read as it was, naming no record
    old = ParkedRegistration.from_message(json.dumps({**message, "version": 1}))
    assert old == parked._replace(idempotency_key=None, outcome=None)
    # And a version 2 message must name both fields (or null)
    with pytest.raises(MalformedParkedRegistrationError):
        ParkedRegistration.from_message(json.dumps({**message, "version": 2}))
