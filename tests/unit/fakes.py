"""In-memory fakes of the domain's ports."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from fulfillment.core.errors import StorageUnavailableError
from fulfillment.customers.models import ParkedRegistration, ResolvedCustomer
from fulfillment.registration.errors import MarketplaceError, RecoveryUnavailableError


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
    # "session" and/or "customer": that write raises StorageUnavailableError.
    failing: set[str] = field(default_factory=set)
    applied: set[str] = field(default_factory=set)

    def settle_customer(self, customer: ResolvedCustomer) -> ResolvedCustomer:
        # No item under an older key here (the DynamoDB store's folds: integration tests).
        return customer

    def open_customer_session(
        self,
        customer: ResolvedCustomer,
        session_id: str,
        at: datetime,
        expires_at: int,
        csrf_token: str,
    ) -> ResolvedCustomer:
        key, product = customer.customer_key, customer.product_code
        self.create_session(session_id, key, product, at, expires_at, csrf_token)
        return customer

    def record_registration(
        self, customer: ResolvedCustomer, at: datetime, registration_id: str
    ) -> bool:
        if "customer" in self.failing:
            raise StorageUnavailableError("ProvisionedThroughputExceededException")
        self.applied.add(registration_id)
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
        if "session" in self.failing:
            raise StorageUnavailableError("ProvisionedThroughputExceededException")
        assert session_id not in self.sessions
        self.sessions[session_id] = (customer_key, product_code, expires_at)

    def restore_session(
        self,
        session_id: str,
        customer_key: str,
        product_code: str,
        at: datetime,
        expires_at: int,
        csrf_token: str,
    ) -> bool:
        if session_id in self.sessions:
            return False
        self.create_session(session_id, customer_key, product_code, at, expires_at, csrf_token)
        return True

    def replay_registration(
        self, customer: ResolvedCustomer, at: datetime, registration_id: str
    ) -> bool:
        if registration_id in self.applied:
            return False
        self.record_registration(customer, at, registration_id)
        return True


@dataclass
class FakeRecoveryQueue:
    parked: list[ParkedRegistration] = field(default_factory=list)
    down: bool = False

    def park(self, registration: ParkedRegistration, *, reason: str) -> None:
        if self.down:
            raise RecoveryUnavailableError("ServiceUnavailable")
        self.parked.append(registration)
