"""The recovery use case: write a parked registration's session and customer, each once."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from fulfillment.customers.models import ParkedRegistration, ResolvedCustomer


class RecoveryStore(Protocol):
    """The writes a parked registration is replayed with; both are idempotent."""

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
        """Apply the registration unless ``registration_id`` already was; True when applied."""
        ...


def replay(parked: ParkedRegistration, *, customers: RecoveryStore) -> bool:
    """Write a parked registration's session and customer, each at most once.

    True when this call applied the customer's registration, False when an earlier delivery
    of the same message already had.
    """
    at = datetime.fromisoformat(parked.registered_at)
    customer = parked.customer
    customers.restore_session(
        parked.registration_id,
        customer.customer_key,
        customer.product_code,
        at,
        parked.session_expires_at,
        parked.csrf_token,
    )
    return customers.replay_registration(customer, at, parked.registration_id)
