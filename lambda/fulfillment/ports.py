"""The ports the domain depends on; adapters implement them, tests fake them."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from fulfillment.models import (
    ContactDetails,
    CustomerRecord,
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
