"""The ports the registration use case depends on; adapters implement them, tests fake them."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from fulfillment.customers.models import ParkedRegistration, ResolvedCustomer


class Marketplace(Protocol):
    def resolve_customer(self, token: str) -> ResolvedCustomer:
        """Redeem a registration token; raise a MarketplaceError subclass on failure."""
        ...


class CustomerStore(Protocol):
    def open_customer_session(
        self,
        customer: ResolvedCustomer,
        session_id: str,
        at: datetime,
        expires_at: int,
        csrf_token: str,
    ) -> ResolvedCustomer:
        """Store a new registration's session, having folded what earlier writes left under
        older keys into the customer's item; return the customer with the key it is stored
        under (a registered older item stays its own), which the session names."""
        ...

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


class RecoveryQueue(Protocol):
    def park(self, registration: ParkedRegistration, *, reason: str) -> None:
        """Keep ``registration`` durably for replay; raise RecoveryUnavailableError if not."""
        ...
