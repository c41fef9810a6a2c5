"""The ports the domain depends on; adapters implement them, tests fake them."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from fulfillment.models import ResolvedCustomer


class Marketplace(Protocol):
    def resolve_customer(self, token: str) -> ResolvedCustomer:
        """Redeem a registration token; raise a MarketplaceError subclass on failure."""
        ...


class CustomerStore(Protocol):
    def record_registration(self, customer: ResolvedCustomer, at: datetime) -> bool:
        """Upsert the customer's registration attributes; True when it is the first one."""
        ...

    def create_session(
        self, session_id: str, customer_key: str, product_code: str, at: datetime, expires_at: int
    ) -> None:
        """Store a sign-up session that refers to the customer and expires at ``expires_at``."""
        ...
