"""The port the sign-up use case depends on (customers/store.py implements it)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from fulfillment.customers.models import ContactDetails, CustomerRecord, SignupSession


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
