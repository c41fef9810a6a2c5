"""Subscription lifecycle: which status a notification means, and how it is recorded.

Pure domain. The mapping (`status_change`) is a function of the notification alone; the use
case (`apply_notification`) finds the customer, fetches entitlements (license events) or the
agreement's terms (agreement events of the Proposer role) and records the change through three
ports (the lifecycle store, the Marketplace entitlements and agreement terms), so its ordering
rules are tested with fakes. No boto3, no environment, no clock: the caller passes `now`.
The status and its ordering rule are the customers layer's (`fulfillment.customers.status`):
registration merges by them too.
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from datetime import datetime, timedelta
from typing import NamedTuple, Protocol

from fulfillment.contract import LifecycleOutcome, NotificationType
from fulfillment.customers.licenses import parse_license_arn
from fulfillment.customers.models import LICENSE_KEY_PREFIX, legacy_key, license_key
from fulfillment.customers.status import CustomerStatus, StatusChange
from fulfillment.lifecycle.notifications import LifecycleNotification

# `Purchase Agreement Ended` with these agreement statuses means a successor agreement took
# over (renewal, replacement): the customer did not leave.
SUCCEEDED_AGREEMENT_STATUSES = frozenset({"RENEWED", "REPLACED", "SUPERSEDED"})

_STATUS_OF: dict[NotificationType, CustomerStatus] = {
    # An agreement exists, but access starts with the license (License Updated).
    NotificationType.AGREEMENT_CREATED: CustomerStatus.PENDING,
    NotificationType.AGREEMENT_ENDED: CustomerStatus.UNSUBSCRIBED,
    NotificationType.LICENSE_UPDATED: CustomerStatus.SUBSCRIBED,
    NotificationType.LICENSE_DEPROVISIONED: CustomerStatus.DEPROVISIONED,
    NotificationType.SUBSCRIBE_SUCCESS: CustomerStatus.SUBSCRIBED,
    NotificationType.SUBSCRIBE_FAIL: CustomerStatus.SUBSCRIBE_FAILED,
    NotificationType.UNSUBSCRIBE_PENDING: CustomerStatus.UNSUBSCRIBE_PENDING,
    NotificationType.UNSUBSCRIBE_SUCCESS: CustomerStatus.UNSUBSCRIBED,
}
ENTITLEMENT_TYPES = frozenset(
    {NotificationType.LICENSE_UPDATED, NotificationType.ENTITLEMENT_UPDATED}
)
# Agreement events after which the agreement's terms are read (GetAgreementTerms), in the
# role allowed to read them: only an agreement's proposer (and its acceptor) may, so the
# Manufacturer copy of the same change is not asked about (docs/lifecycle.md, "Free trials").
TERMS_TYPES = frozenset({NotificationType.AGREEMENT_CREATED, NotificationType.AGREEMENT_AMENDED})
TERMS_ROLE = "Proposer"

# A parked agreement fact is needed only until its license event arrives (seconds to minutes);
# an agreement of a product this stack does not serve is never merged and expires.
PARKED_AGREEMENT_TTL = timedelta(days=30)


def timestamp(at: datetime) -> str:
    """The one text form of times in the table: UTC, milliseconds, sortable as text."""
    return at.isoformat(timespec="milliseconds")


class Identity(NamedTuple):
    """What a notification says about who the customer is; written only where absent."""

    product_code: str | None
    customer_aws_account_id: str | None
    license_arn: str | None
    customer_identifier: str | None
    agreement_id: str | None
    offer_id: str | None
    free_trial: bool | None


class Entitlement(NamedTuple):
    dimension: str
    value: int | float | bool | str | None
    value_type: str | None  # "integer", "double", "boolean", "string"; None: no value
    expiration: str | None


class EntitlementQuery(NamedTuple):
    """Whose entitlements to fetch: the most specific filter the notification allows."""

    product_code: str
    license_arn: str | None = None
    customer_aws_account_id: str | None = None
    customer_identifier: str | None = None


class AgreementTerms(NamedTuple):
    """What an agreement's terms said when they were read: whether it has a free trial."""

    agreement_id: str
    free_trial: bool
    checked_at: str  # when they were read; a later reading wins


class ParkedAgreement(NamedTuple):
    """What is kept for an agreement no customer had yet: its newest status, its terms."""

    change: StatusChange | None
    terms: AgreementTerms | None


class EntitlementsUnavailableError(Exception):
    """GetEntitlements failed after the SDK's retries; ``code`` is the bounded error code."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class AgreementTermsUnavailableError(Exception):
    """GetAgreementTerms failed after the SDK's retries; ``code`` is the bounded error code."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class CustomerNotIdentifiableError(ValueError):
    """An entitlement notification names no license, account or customer identifier."""


# -- ports ---------------------------------------------------------------------------------


class LifecycleStore(Protocol):
    def customer_keys_by_license(self, license_arn: str) -> list[str]: ...

    def customer_keys_by_agreement(self, agreement_id: str) -> list[str]: ...

    def customer_keys_by_identifier(self, product_code: str, customer_identifier: str) -> list[str]:
        """The customer items of ``product_code`` that carry this legacy identifier."""
        ...

    def parked_agreement(self, agreement_id: str) -> ParkedAgreement | None:
        """What is kept for an agreement no customer had yet, if anything."""
        ...

    def record_status(
        self,
        customer_key: str,
        identity: Identity,
        change: StatusChange,
        entitlements: Sequence[Entitlement] | None = None,
        fetched_at: str | None = None,
    ) -> bool:
        """Record ``change`` (and, in the same write, the entitlements fetched for it) on the
        customer, creating it if need be, unless the stored change supersedes it; False when
        it was stale. Raise StorageUnavailableError."""
        ...

    def park(
        self, agreement_id: str, identity: Identity, change: StatusChange, expires_at: int
    ) -> bool:
        """Keep ``change`` for an agreement no customer has yet; False when stale."""
        ...

    def park_terms(self, terms: AgreementTerms, expires_at: int) -> bool:
        """Keep ``terms`` for an agreement no customer has yet; False when a later reading
        is kept."""
        ...

    def record_terms(self, customer_key: str, terms: AgreementTerms) -> bool:
        """Record ``terms`` on the customer if it is on their agreement and no later reading
        is stored; False otherwise."""
        ...

    def record_entitlements(
        self,
        customer_key: str,
        identity: Identity,
        entitlements: Sequence[Entitlement],
        fetched_at: str,
    ) -> bool:
        """Store the entitlements unless a later fetch is stored; False when stale."""
        ...

    def move_agreement(
        self, customer_key: str, previous_agreement_id: str, identity: Identity, at: str
    ) -> bool:
        """Move the customer from ``previous_agreement_id`` to ``identity.agreement_id``, unless
        it is on another agreement by now or its agreement was named at ``at`` or later;
        False when not moved. What the previous agreement's terms said is dropped with it."""
        ...


class Entitlements(Protocol):
    def fetch(self, query: EntitlementQuery) -> list[Entitlement] | None:
        """Every page of GetEntitlements, the query's customer's only; None when there is no
        answer to store (a subscription-only product, or a request the service refuses as
        invalid); raise EntitlementsUnavailableError on a failure worth retrying."""
        ...


class AgreementTermsSource(Protocol):
    def free_trial(self, agreement_id: str) -> bool | None:
        """Whether the agreement's accepted terms include a free-trial pricing term; None when
        the service refuses to say (permanent: not allowed, no such agreement); raise
        AgreementTermsUnavailableError on a failure worth retrying."""
        ...


# -- mapping -------------------------------------------------------------------------------


def status_change(notification: LifecycleNotification) -> StatusChange | None:
    """The status a notification sets, or None when it changes no status (an amendment,
    an entitlement update, an agreement ended because a successor took over, a successor
    agreement created)."""
    status = _STATUS_OF.get(notification.event_type)
    if status is None:
        return None
    if (
        notification.event_type is NotificationType.AGREEMENT_ENDED
        and (notification.agreement_status or "").upper() in SUCCEEDED_AGREEMENT_STATUSES
    ):
        return None
    if notification.previous_agreement_id is not None:
        # A renewal's (or replacement's) new agreement: the customer continues; only the
        # agreement it is on changes (`renew`).
        return None
    return StatusChange(status, timestamp(notification.occurred_at), notification.event_type)


def identity_of(notification: LifecycleNotification) -> Identity:
    return Identity(
        product_code=notification.product_code,
        customer_aws_account_id=notification.customer_aws_account_id,
        license_arn=notification.license_arn,
        customer_identifier=notification.customer_identifier,
        agreement_id=notification.agreement_id,
        offer_id=notification.offer_id,
        free_trial=notification.free_trial,
    )


def _license_keyed_first(keys: list[str]) -> list[str]:
    """Where a license-keyed item is found, it is the customer: a legacy-keyed item found
    beside it is one registered before licenses keyed customers, or one an SNS notification
    created before the buyer registered with a license that registration has not folded into
    the license-keyed item yet (docs/lifecycle.md)."""
    licensed = [key for key in keys if key.startswith(LICENSE_KEY_PREFIX)]
    return licensed or keys


def entitlement_query(notification: LifecycleNotification) -> EntitlementQuery:
    if notification.product_code is None:
        raise CustomerNotIdentifiableError("no product code")
    if notification.license_arn:
        # The account too, when known: the answer's entitlements are checked against both.
        return EntitlementQuery(
            notification.product_code,
            license_arn=notification.license_arn,
            customer_aws_account_id=notification.customer_aws_account_id,
        )
    if notification.customer_identifier:
        return EntitlementQuery(
            notification.product_code, customer_identifier=notification.customer_identifier
        )
    if notification.customer_aws_account_id:
        return EntitlementQuery(
            notification.product_code,
            customer_aws_account_id=notification.customer_aws_account_id,
        )
    raise CustomerNotIdentifiableError("no license, customer identifier or account")


# -- use case ------------------------------------------------------------------------------


def locate(notification: LifecycleNotification, store: LifecycleStore) -> list[str]:
    """The keys of the customer items a notification concerns (index queries, no scans).

    A license finds the item that carries it, else the key registration will use for it; a
    legacy identifier (SNS) finds the item that carries it (keyed by its license, if the
    buyer registered with one), else the legacy key; a license-keyed item found is preferred
    to a legacy-keyed one. An agreement event (no license, no product) finds customers by
    agreement id, or nobody yet.
    """
    if notification.license_arn:
        # Items keyed before license ids keyed customers carry the ARN as it came, which
        # for every registered one is ResolveCustomer's spelling: both are looked up.
        spellings = parse_license_arn(notification.license_arn).spellings
        found = sorted({key for arn in spellings for key in store.customer_keys_by_license(arn)})
        return _license_keyed_first(found) or [license_key(notification.license_arn)]
    if notification.customer_identifier and notification.product_code:
        product, identifier = notification.product_code, notification.customer_identifier
        found = store.customer_keys_by_identifier(product, identifier)
        return _license_keyed_first(found) or [legacy_key(product, identifier)]
    if notification.agreement_id:
        return store.customer_keys_by_agreement(notification.agreement_id)
    return []


def read_terms(
    notification: LifecycleNotification, source: AgreementTermsSource, now: datetime
) -> AgreementTerms | None:
    """The agreement's terms, for the agreement events they are read after; None otherwise
    and when the service would not say."""
    agreement = notification.agreement_id
    if (
        notification.event_type not in TERMS_TYPES
        or notification.role != TERMS_ROLE
        or agreement is None
    ):
        return None
    free_trial = source.free_trial(agreement)
    if free_trial is None:
        return None
    return AgreementTerms(agreement, free_trial, timestamp(now))


def apply_notification(
    notification: LifecycleNotification,
    *,
    store: LifecycleStore,
    entitlements: Entitlements,
    terms_source: AgreementTermsSource,
    product_codes: Set[str],
    now: datetime,
) -> LifecycleOutcome:
    """Record what ``notification`` says about its customer; return what became of it."""
    if notification.product_code is not None and notification.product_code not in product_codes:
        return LifecycleOutcome.IGNORED_PRODUCT
    # Before any write: a failed read fails the record and nothing is half-done.
    terms = read_terms(notification, terms_source, now)
    expires_at = int((now + PARKED_AGREEMENT_TTL).timestamp())
    if notification.previous_agreement_id is not None and notification.agreement_id is not None:
        return renew(notification, store, terms, expires_at)
    change = status_change(notification)
    identity = identity_of(notification)
    fetched = None
    if notification.event_type in ENTITLEMENT_TYPES:
        fetched = entitlements.fetch(entitlement_query(notification))
    keys = locate(notification, store)
    if not keys:
        return park(notification, store, change, terms, expires_at)
    if notification.license_arn and notification.agreement_id:
        # What was parked for this agreement before any customer had it: the newer wins.
        kept = store.parked_agreement(notification.agreement_id)
        if kept is not None:
            if kept.change is not None and kept.change.supersedes(change):
                change = kept.change
            terms = terms or kept.terms
    if change is None and fetched is None and terms is None:
        return LifecycleOutcome.NO_CHANGE
    written = False
    for key in keys:
        if change is not None:
            # One write for status and entitlements: a stale duplicate writes nothing, and a
            # retry after a failure cannot find the status recorded but the entitlements not.
            written |= store.record_status(key, identity, change, fetched, timestamp(now))
        elif fetched is not None:
            written |= store.record_entitlements(key, identity, fetched, timestamp(now))
        if terms is not None:
            # After the status, which names the customer's agreement: terms are recorded only
            # on a customer on their agreement.
            written |= store.record_terms(key, terms)
    return LifecycleOutcome.APPLIED if written else LifecycleOutcome.STALE


def park(
    notification: LifecycleNotification,
    store: LifecycleStore,
    change: StatusChange | None,
    terms: AgreementTerms | None,
    expires_at: int,
) -> LifecycleOutcome:
    """Keep what an agreement event says for the customer its license event will create."""
    agreement = notification.agreement_id
    if terms is None and (change is None or agreement is None):
        return LifecycleOutcome.NO_CHANGE
    parked = terms is not None and store.park_terms(terms, expires_at)
    if change is not None and agreement is not None:
        parked |= store.park(agreement, identity_of(notification), change, expires_at)
    return LifecycleOutcome.PARKED if parked else LifecycleOutcome.STALE


def renew(
    notification: LifecycleNotification,
    store: LifecycleStore,
    terms: AgreementTerms | None,
    expires_at: int,
) -> LifecycleOutcome:
    """A renewal (or replacement) moves the customers of the previous agreement to the new
    one, so the new agreement's later events find them and the old one's do not; a change
    parked for the new agreement before the move (its Ended came first) is then recorded,
    and so are the new agreement's terms (the previous one's go with the move)."""
    previous = notification.previous_agreement_id
    agreement = notification.agreement_id
    if previous is None or agreement is None:
        return LifecycleOutcome.NO_CHANGE
    keys = store.customer_keys_by_agreement(previous)
    identity = identity_of(notification)
    at = timestamp(notification.occurred_at)
    written = False
    for key in keys:
        written |= store.move_agreement(key, previous, identity, at)
    kept = store.parked_agreement(agreement) if keys else None
    if kept is not None:
        if kept.change is not None:
            for key in keys:
                written |= store.record_status(key, identity, kept.change)
        terms = terms or kept.terms
    if terms is not None:
        # The other role's copy of this event may have moved them already.
        holders = sorted(set(keys) | set(store.customer_keys_by_agreement(agreement)))
        if not holders:
            parked = store.park_terms(terms, expires_at)
            return LifecycleOutcome.PARKED if parked else LifecycleOutcome.STALE
        for key in holders:
            written |= store.record_terms(key, terms)
    elif not keys:
        # Moved already (the other role's variant of this event), or nobody known yet.
        return LifecycleOutcome.NO_CHANGE
    return LifecycleOutcome.APPLIED if written else LifecycleOutcome.STALE
