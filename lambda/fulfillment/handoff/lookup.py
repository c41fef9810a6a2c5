"""The seller hand-off use case: what a seller's backend may learn about a registration id.

Domain logic only: the store is injected (a small port below), the clock is an argument.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple, Protocol

from fulfillment.core.ids import is_registration_id
from fulfillment.customers.errors import (
    MalformedRegistrationIdError,
    RegistrationPendingError,
    SignupSessionUnavailableError,
    UnknownSignupSessionError,
)
from fulfillment.customers.models import CustomerRecord, SignupSession


class RegistrationReader(Protocol):
    """The two reads the hand-off needs (DynamoDBCustomerStore implements them)."""

    def get_session(self, session_id: str) -> SignupSession | None: ...

    def get_customer(self, customer_key: str) -> CustomerRecord | None: ...


class RegistrationLookup(NamedTuple):
    """A live registration and the Marketplace customer it belongs to."""

    session: SignupSession
    customer: CustomerRecord


def lookup_registration(
    session_id: str, store: RegistrationReader, now: datetime
) -> RegistrationLookup:
    """The registration ``session_id`` and its customer, if it exists and has not expired.

    Raises MalformedRegistrationIdError (no store call made), UnknownSignupSessionError,
    SignupSessionUnavailableError (expired) or RegistrationPendingError (no customer yet).
    """
    if not is_registration_id(session_id):
        raise MalformedRegistrationIdError("registration id has the wrong shape")
    session = store.get_session(session_id)
    if session is None:
        raise UnknownSignupSessionError("no such registration")
    # TTL deletion lags expiry by up to days: an expired item is treated as gone.
    if session.expires_at <= int(now.timestamp()):
        raise SignupSessionUnavailableError("registration expired")
    customer = store.get_customer(session.customer_key)
    if customer is None:
        # Registration (and its replay) writes the session first, the customer last: a live
        # session without its customer is a registration parked after a failed customer
        # write, which the recovery processor will complete. Not gone: not yet.
        raise RegistrationPendingError("registration's customer not recorded yet")
    return RegistrationLookup(session=session, customer=customer)
