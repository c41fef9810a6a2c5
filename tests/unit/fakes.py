"""In-memory fakes of the domain's ports."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from fulfillment.errors import MarketplaceError
from fulfillment.models import ResolvedCustomer


@dataclass
class FakeMarketplace:
    customers: dict[str, ResolvedCustomer] = field(default_factory=dict)
    error: MarketplaceError | None = None
    calls: list[str] = field(default_factory=list)

    def resolve_customer(self, token: str) -> ResolvedCustomer:
        self.calls.append(token)
        if self.error is not None:
            raise self.error
        return self.customers[token]


@dataclass
class FakeCustomerStore:
    registrations: dict[str, int] = field(default_factory=dict)
    sessions: dict[str, tuple[str, str, int]] = field(default_factory=dict)

    def record_registration(
        self, customer: ResolvedCustomer, at: datetime, registration_id: str
    ) -> bool:
        key = customer.customer_key
        self.registrations[key] = self.registrations.get(key, 0) + 1
        return self.registrations[key] == 1

    def create_session(
        self,
        session_id: str,
        customer_key: str,
        product_code: str,
        at: datetime,
        expires_at: int,
        csrf_token: str,
    ) -> None:
        assert session_id not in self.sessions
        self.sessions[session_id] = (customer_key, product_code, expires_at)
