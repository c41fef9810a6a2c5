"""The ports the domain depends on; adapters implement them, tests fake them."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from fulfillment.models import (
    ContactDetails,
    CustomerRecord,
    ParkedRegistration,
    ResolvedCustomer,
    SignupSession,
)


class Marketplace(Protocol):
    def resolve_customer(self, token: str) -> ResolvedCustomer:
        """Redeem a registration token; raise a MarketplaceError subclass on failure."""
        ...


class CustomerStore(Protocol):
    def record_registration(
        self, customer: ResolvedCustomer, at: datetime, registration_id: str
    ) -> bool:
        """Upsert the customer's registration attributes; True when it is the first one."""
        ...

    def create_session(
        self,
        session_id: str,
        customer_key: str,
        product_code: str,
        at: datetime,
        expires_at: int,
        csrf_token: str,
    ) -> None:
        """Store a sign-up session that refers to the customer and expires at ``expires_at``."""
        ...


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


class RecoveryQueue(Protocol):
    def park(self, registration: ParkedRegistration, *, reason: str) -> None:
        """Keep ``registration`` durably for replay; raise RecoveryUnavailableError if not."""
        ...


class SignupStore(Protocol):
    def get_session(self, session_id: str) -> SignupSession | None:
        """The session, or None when unknown (expired ones are returned: callers decide)."""
        ...

    def get_customer(self, customer_key: str) -> CustomerRecord | None: ...

    def complete_signup(
        self, session: SignupSession, contact: ContactDetails, at: datetime
    ) -> None:
        """Atomically: mark the session completed (once, before expiry), store the contact
        details apart from the customer record, stamp the customer signed up.
        Raises SignupAlreadyCompletedError or SignupSessionUnavailableError."""
        ...
