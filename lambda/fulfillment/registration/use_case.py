"""The registration use case: token -> customer record -> sign-up session."""

from __future__ import annotations

from collections.abc import Set
from datetime import datetime

from fulfillment.core.errors import DeadlineExceededError, StorageUnavailableError
from fulfillment.core.ids import new_csrf_token, new_session_id, pseudonym
from fulfillment.customers.models import ParkedRegistration, ResolvedCustomer
from fulfillment.registration.errors import UnknownProductError
from fulfillment.registration.models import RegistrationOutcome
from fulfillment.registration.ports import CustomerStore, Marketplace, RecoveryQueue


def register(
    token: str,
    *,
    marketplace: Marketplace,
    customers: CustomerStore,
    recovery: RecoveryQueue,
    product_codes: Set[str],
    now: datetime,
    session_ttl_seconds: int,
    request_id: str,
    free_trial: bool = False,
    idempotency_key: str | None = None,
) -> RegistrationOutcome:
    """Resolve ``token``, record the customer and open a sign-up session for them.

    Once ResolveCustomer has answered, the registration is never dropped: if a write fails
    it is parked on the recovery queue and the outcome says ``deferred``. The parked message
    carries ``idempotency_key`` (the token's idempotency record) and the deferred outcome, so
    the replay completes the record even when this invocation cannot save it.
    """
    customer = marketplace.resolve_customer(token)
    if customer.product_code not in product_codes:
        raise UnknownProductError(customer.product_code)
    session_id, csrf_token = new_session_id(), new_csrf_token()
    expires_at = int(now.timestamp()) + session_ttl_seconds
    try:
        # The session first, the customer last: if the customer write fails, the only trace is
        # a session nobody was given yet, and the replay counts the registration once. Items
        # that came first under older keys join the customer's before the session names it
        # (a registered one stays the customer's item): one item, whatever arrived first.
        customer = customers.open_customer_session(
            customer, session_id, now, expires_at, csrf_token
        )
        new_customer = customers.record_registration(customer, now, session_id)
    except (StorageUnavailableError, DeadlineExceededError) as error:
        deferred = _outcome(
            customer.customer_key, customer.product_code, session_id, expires_at, request_id
        )._replace(deferred=True, free_trial=free_trial)
        parked = _parked(customer, session_id, expires_at, csrf_token, now, request_id)
        if idempotency_key is not None:
            parked = parked._replace(idempotency_key=idempotency_key, outcome=deferred.as_record())
        # Raises RecoveryUnavailableError when the queue refuses too: nothing was promised.
        recovery.park(parked, reason=f"{type(error).__name__}: {error}")
        return deferred
    opened = _outcome(
        customer.customer_key, customer.product_code, session_id, expires_at, request_id
    )
    return opened._replace(new_customer=new_customer, free_trial=free_trial)


def _parked(
    customer: ResolvedCustomer,
    session_id: str,
    expires_at: int,
    csrf_token: str,
    now: datetime,
    request_id: str,
) -> ParkedRegistration:
    return ParkedRegistration(
        registration_id=session_id,
        product_code=customer.product_code,
        customer_aws_account_id=customer.customer_aws_account_id,
        license_arn=customer.license_arn,
        customer_identifier=customer.customer_identifier,
        agreement_id=customer.agreement_id,
        session_expires_at=expires_at,
        csrf_token=csrf_token,
        registered_at=now.isoformat(),
        request_id=request_id,
    )


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
    csrf_token: str | None = None,
) -> RegistrationOutcome:
    """Store a fresh sign-up session for an already recorded customer."""
    session_id = session_id or new_session_id()
    expires_at = int(now.timestamp()) + session_ttl_seconds
    customers.create_session(
        session_id, customer_key, product_code, now, expires_at, csrf_token or new_csrf_token()
    )
    outcome = _outcome(customer_key, product_code, session_id, expires_at, request_id)
    return outcome._replace(new_customer=new_customer)


def _outcome(
    customer_key: str, product_code: str, session_id: str, expires_at: int, request_id: str
) -> RegistrationOutcome:
    return RegistrationOutcome(
        session_id=session_id,
        session_expires_at=expires_at,
        customer_key=customer_key,
        customer_ref=pseudonym(customer_key),
        product_code=product_code,
        new_customer=False,
        registered_by_request=request_id,
    )
