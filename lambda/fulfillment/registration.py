"""The registration use case: token -> customer record -> sign-up session."""

from __future__ import annotations

import secrets
from collections.abc import Set
from dataclasses import replace
from datetime import datetime

from fulfillment.errors import UnknownProductError
from fulfillment.models import RegistrationOutcome
from fulfillment.observability import pseudonym
from fulfillment.ports import CustomerStore, Marketplace

# 24 random bytes: 192 bits, above the 128 the hand-off needs to be unguessable.
SESSION_ID_BYTES = 24


def new_session_id() -> str:
    return secrets.token_urlsafe(SESSION_ID_BYTES)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(SESSION_ID_BYTES)


def register(
    token: str,
    *,
    marketplace: Marketplace,
    customers: CustomerStore,
    product_codes: Set[str],
    now: datetime,
    session_ttl_seconds: int,
    request_id: str,
) -> RegistrationOutcome:
    """Resolve ``token``, record the customer and open a sign-up session for them."""
    customer = marketplace.resolve_customer(token)
    if customer.product_code not in product_codes:
        raise UnknownProductError(customer.product_code)
    # The session first, the customer last: if the customer write fails, the only trace is a
    # session nobody was given (it expires), and a retry counts the registration once.
    opened = open_session(
        customer.customer_key,
        customer.product_code,
        customers=customers,
        now=now,
        session_ttl_seconds=session_ttl_seconds,
        new_customer=False,
        request_id=request_id,
    )
    new_customer = customers.record_registration(customer, now, opened.session_id)
    return replace(opened, new_customer=new_customer)


def open_session(
    customer_key: str,
    product_code: str,
    *,
    customers: CustomerStore,
    now: datetime,
    session_ttl_seconds: int,
    new_customer: bool,
    request_id: str,
    session_id: str | None = None,
) -> RegistrationOutcome:
    """Store a fresh sign-up session for an already recorded customer."""
    session_id = session_id or new_session_id()
    expires_at = int(now.timestamp()) + session_ttl_seconds
    customers.create_session(
        session_id, customer_key, product_code, now, expires_at, new_csrf_token()
    )
    return RegistrationOutcome(
        session_id=session_id,
        session_expires_at=expires_at,
        customer_key=customer_key,
        customer_ref=pseudonym(customer_key),
        product_code=product_code,
        new_customer=new_customer,
        registered_by_request=request_id,
    )
