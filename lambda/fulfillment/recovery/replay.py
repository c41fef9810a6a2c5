"""The recovery use case: write a parked registration's session and customer, each once, and
complete the token's idempotency record with the answer the buyer was given."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple, Protocol

from fulfillment.customers.models import ParkedRegistration, ResolvedCustomer


class RecoveryStore(Protocol):
    """The writes a parked registration is replayed with; all are idempotent."""

    def settle_customer(self, customer: ResolvedCustomer) -> ResolvedCustomer:
        """Fold older keys' items into the customer's, as registration does; return the
        customer with the key it is stored under."""
        ...

    def restore_session(
        self,
        session_id: str,
        customer_key: str,
        product_code: str,
        at: datetime,
        expires_at: int,
        csrf_token: str,
    ) -> bool:
        """Store the session unless it exists; True when this call stored it."""
        ...

    def replay_registration(
        self, customer: ResolvedCustomer, at: datetime, registration_id: str
    ) -> bool:
        """Apply the registration unless it already was, or a newer one was; True when
        applied."""
        ...


class IdempotencyRecords(Protocol):
    def complete(self, key: str, outcome: str) -> bool:
        """Complete the in-progress record ``key`` with ``outcome``; True when this call did."""
        ...


class Replayed(NamedTuple):
    # This call applied the customer's registration (False: already applied, or overtaken).
    applied: bool
    # This call completed the token's idempotency record (False: saved already, or none named).
    record_completed: bool


def replay(
    parked: ParkedRegistration, *, customers: RecoveryStore, records: IdempotencyRecords
) -> Replayed:
    """Write a parked registration's session and customer, each at most once, then complete
    its idempotency record: last, so a resubmission that replays the answer finds both."""
    at = datetime.fromisoformat(parked.registered_at)
    # As registration does, before anything names the customer (docs/lifecycle.md).
    customer = customers.settle_customer(parked.customer)
    customers.restore_session(
        parked.registration_id,
        customer.customer_key,
        customer.product_code,
        at,
        parked.session_expires_at,
        parked.csrf_token,
    )
    applied = customers.replay_registration(customer, at, parked.registration_id)
    completed = False
    # Messages parked before version 2 name no record.
    if parked.idempotency_key is not None and parked.outcome is not None:
        completed = records.complete(parked.idempotency_key, parked.outcome)
    return Replayed(applied=applied, record_completed=completed)
