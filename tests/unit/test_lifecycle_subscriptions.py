"""Status mapping and the lifecycle use case's ordering rules, with in-memory fakes (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from fulfillment.contract import LifecycleOutcome
from fulfillment.customers.status import CustomerStatus, StatusChange
from fulfillment.lifecycle.notifications import LifecycleNotification, parse_notification
from fulfillment.lifecycle.subscriptions import (
    AgreementTerms,
    AgreementTermsUnavailableError,
    Entitlement,
    EntitlementQuery,
    Identity,
    ParkedAgreement,
    apply_notification,
    status_change,
)
from tests.lifecycle_events import (
    AGREEMENT,
    LEGACY_PK,
    LICENSE_ARN,
    LICENSE_PK,
    PRODUCT,
    body,
    event,
    eventbridge_names,
    renewal,
    sns_envelope,
    sns_names,
)

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
SEATS = Entitlement("Seats", 25, "integer", "2027-11-26T08:59:58.000+00:00")


@dataclass
class FakeStore:
    """The store port with DynamoDB's semantics: conditional writes by (time, rank)."""

    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    parked: dict[str, StatusChange] = field(default_factory=dict)
    parked_terms: dict[str, AgreementTerms] = field(default_factory=dict)
    writes: list[str] = field(default_factory=list)

    def customer_keys_by_license(self, license_arn: str) -> list[str]:
        return sorted(k for k, v in self.items.items() if v.get("license_arn") == license_arn)

    def customer_keys_by_agreement(self, agreement_id: str) -> list[str]:
        return sorted(k for k, v in self.items.items() if v.get("agreement_id") == agreement_id)

    def customer_keys_by_identifier(self, product_code: str, customer_identifier: str) -> list[str]:
        return sorted(
            k
            for k, v in self.items.items()
            if v.get("customer_identifier") == customer_identifier
            and v.get("product_code") == product_code
        )

    def parked_agreement(self, agreement_id: str) -> ParkedAgreement | None:
        change, terms = self.parked.get(agreement_id), self.parked_terms.get(agreement_id)
        return None if change is None and terms is None else ParkedAgreement(change, terms)

    def record_status(
        self,
        customer_key: str,
        identity: Identity,
        change: StatusChange,
        entitlements: Sequence[Entitlement] | None = None,
        fetched_at: str | None = None,
    ) -> bool:
        item = self.items.setdefault(customer_key, {})
        if not change.supersedes(item.get("change")):
            return False
        self.writes.append(customer_key)
        item["change"] = change
        for name in ("license_arn", "customer_identifier", "product_code"):
            item.setdefault(name, getattr(identity, name))
        if identity.agreement_id and item.get("agreement_at", "") <= change.at:
            item["agreement_id"], item["agreement_at"] = identity.agreement_id, change.at
        if entitlements is not None:
            item["entitlements"] = list(entitlements)
        return True

    def park(
        self, agreement_id: str, identity: Identity, change: StatusChange, expires_at: int
    ) -> bool:
        if not change.supersedes(self.parked.get(agreement_id)):
            return False
        self.parked[agreement_id] = change
        return True

    def park_terms(self, terms: AgreementTerms, expires_at: int) -> bool:
        kept = self.parked_terms.get(terms.agreement_id)
        if kept is not None and kept.checked_at >= terms.checked_at:
            return False
        self.parked_terms[terms.agreement_id] = terms
        return True

    def record_terms(self, customer_key: str, terms: AgreementTerms) -> bool:
        item = self.items.get(customer_key, {})
        if item.get("agreement_id") != terms.agreement_id:
            return False
        if item.get("terms_at", "") >= terms.checked_at:
            return False
        self.writes.append(customer_key)
        item["free_trial"], item["terms_at"] = terms.free_trial, terms.checked_at
        return True

    def record_entitlements(
        self,
        customer_key: str,
        identity: Identity,
        entitlements: Sequence[Entitlement],
        fetched_at: str,
    ) -> bool:
        item = self.items.setdefault(customer_key, {})
        if item.get("entitlements_at", "") >= fetched_at:
            return False
        self.writes.append(customer_key)
        item["entitlements"], item["entitlements_at"] = list(entitlements), fetched_at
        return True

    def move_agreement(
        self, customer_key: str, previous_agreement_id: str, identity: Identity, at: str
    ) -> bool:
        item = self.items.get(customer_key, {})
        if item.get("agreement_id") != previous_agreement_id or item.get("agreement_at", "") >= at:
            return False
        self.writes.append(customer_key)
        item["agreement_id"], item["agreement_at"] = identity.agreement_id, at
        item.pop("free_trial", None), item.pop("terms_at", None)
        return True

    def status(self, key: str) -> CustomerStatus | None:
        change = self.items.get(key, {}).get("change")
        return change.status if change else None


@dataclass
class FakeEntitlements:
    answer: list[Entitlement] = field(default_factory=lambda: [SEATS])
    queries: list[EntitlementQuery] = field(default_factory=list)

    def fetch(self, query: EntitlementQuery) -> list[Entitlement]:
        self.queries.append(query)
        return list(self.answer)


@dataclass
class FakeTerms:
    """The agreement terms port: a free-trial answer per agreement (None: refused)."""

    answers: dict[str, bool | None] = field(default_factory=dict)
    failing: bool = False
    asked: list[str] = field(default_factory=list)

    def free_trial(self, agreement_id: str) -> bool | None:
        self.asked.append(agreement_id)
        if self.failing:
            raise AgreementTermsUnavailableError("ThrottlingException")
        return self.answers.get(agreement_id)


def _eb(name: str, **changes: Any) -> LifecycleNotification:
    return parse_notification(body(event(name, **changes)))


def _sns(name: str, **message: Any) -> LifecycleNotification:
    return parse_notification(body(sns_envelope(name, message=message or None)))


def _apply(
    notification: LifecycleNotification,
    store: FakeStore,
    entitlements: FakeEntitlements | None = None,
    products: frozenset[str] = frozenset({PRODUCT}),
    terms: FakeTerms | None = None,
    now: datetime = NOW,
) -> LifecycleOutcome:
    return apply_notification(
        notification,
        store=store,
        entitlements=entitlements or FakeEntitlements(),
        terms_source=terms or FakeTerms(),
        product_codes=products,
        now=now,
    )


# -- mapping -------------------------------------------------------------------------------

EXPECTED_STATUS = {
    "agreement_created": CustomerStatus.PENDING,
    "agreement_amended": None,
    "agreement_ended": CustomerStatus.UNSUBSCRIBED,
    "license_updated": CustomerStatus.SUBSCRIBED,
    "license_deprovisioned": CustomerStatus.DEPROVISIONED,
    "subscribe_success": CustomerStatus.SUBSCRIBED,
    "subscribe_fail": CustomerStatus.SUBSCRIBE_FAILED,
    "unsubscribe_pending": CustomerStatus.UNSUBSCRIBE_PENDING,
    "unsubscribe_success": CustomerStatus.UNSUBSCRIBED,
    "entitlement_updated": None,
}


@pytest.mark.parametrize("name", eventbridge_names())
def test_each_eventbridge_event_maps_to_its_status_in_both_roles(name: str) -> None:
    notification = _eb(name)

    change = status_change(notification)

    expected = EXPECTED_STATUS[name.rsplit("_", 1)[0]]
    assert (change.status if change else None) == expected
    if change:
        assert change.at == "2026-" + event(name)["time"][5:19] + ".000+00:00"
        assert change.source == notification.event_type


@pytest.mark.parametrize("name", sns_names())
def test_each_sns_action_maps_to_its_status(name: str) -> None:
    change = status_change(_sns(name))

    assert (change.status if change else None) == EXPECTED_STATUS[name]


@pytest.mark.parametrize(
    ("agreement_status", "expected"),
    [
        ("CANCELLED", CustomerStatus.UNSUBSCRIBED),
        ("EXPIRED", CustomerStatus.UNSUBSCRIBED),
        ("TERMINATED", CustomerStatus.UNSUBSCRIBED),
        ("RENEWED", None),
        ("REPLACED", None),
        ("SUPERSEDED", None),
    ],
)
def test_an_agreement_that_ended_for_a_successor_changes_no_status(
    agreement_status: str, expected: CustomerStatus | None
) -> None:
    payload = event("agreement_ended_manufacturer")
    payload["detail"]["agreement"]["status"] = agreement_status

    change = status_change(parse_notification(body(payload)))

    assert (change.status if change else None) == expected


# -- the use case --------------------------------------------------------------------------


def test_a_license_event_before_registration_creates_the_customer_under_its_license_key() -> None:
    store, entitlements = FakeStore(), FakeEntitlements()

    outcome = _apply(_eb("license_updated_manufacturer"), store, entitlements)

    assert outcome is LifecycleOutcome.APPLIED
    assert store.status(LICENSE_PK) is CustomerStatus.SUBSCRIBED
    assert store.items[LICENSE_PK]["entitlements"] == [SEATS]
    # The account too: the adapter checks the answer's entitlements against both.
    assert entitlements.queries == [
        EntitlementQuery(PRODUCT, license_arn=LICENSE_ARN, customer_aws_account_id="111122223333")
    ]


def test_a_license_finds_a_legacy_keyed_customer_that_carries_it() -> None:
    store = FakeStore(items={LEGACY_PK: {"license_arn": LICENSE_ARN}})

    _apply(_eb("license_updated_manufacturer"), store)

    assert store.status(LEGACY_PK) is CustomerStatus.SUBSCRIBED
    assert LICENSE_PK not in store.items


def test_an_older_notification_never_moves_the_status_back() -> None:
    store = FakeStore()

    _apply(_eb("license_deprovisioned_manufacturer"), store)
    outcome = _apply(_eb("license_updated_manufacturer"), store)

    assert outcome is LifecycleOutcome.STALE
    assert store.status(LICENSE_PK) is CustomerStatus.DEPROVISIONED


def test_two_changes_in_the_same_second_end_in_the_later_stage() -> None:
    store = FakeStore()
    same_time = "2026-12-01T12:00:00Z"

    _apply(_eb("license_deprovisioned_manufacturer", time=same_time), store)
    _apply(_eb("license_updated_manufacturer", time=same_time), store)

    assert store.status(LICENSE_PK) is CustomerStatus.DEPROVISIONED


def test_an_agreement_no_customer_has_yet_is_parked() -> None:
    store = FakeStore()

    outcome = _apply(_eb("agreement_created_proposer"), store)

    assert outcome is LifecycleOutcome.PARKED
    assert store.items == {}
    assert store.parked[AGREEMENT].status is CustomerStatus.PENDING


def test_an_older_parked_creation_does_not_override_the_license() -> None:
    store = FakeStore()
    _apply(_eb("agreement_created_manufacturer"), store)

    _apply(_eb("license_updated_manufacturer"), store)

    assert store.status(LICENSE_PK) is CustomerStatus.SUBSCRIBED
    assert store.writes == [LICENSE_PK]


def test_an_agreement_event_finds_the_customer_by_agreement() -> None:
    store = FakeStore()
    _apply(_eb("license_updated_manufacturer"), store)

    outcome = _apply(_eb("agreement_ended_proposer"), store)

    assert outcome is LifecycleOutcome.APPLIED
    assert store.status(LICENSE_PK) is CustomerStatus.UNSUBSCRIBED
    assert store.parked == {}


def test_an_amendment_changes_nothing() -> None:
    store = FakeStore()
    _apply(_eb("license_updated_manufacturer"), store)

    assert _apply(_eb("agreement_amended_proposer"), store) is LifecycleOutcome.NO_CHANGE
    assert _apply(_eb("agreement_amended_manufacturer"), FakeStore()) is LifecycleOutcome.NO_CHANGE


def test_other_products_are_ignored_without_any_call() -> None:
    store, entitlements = FakeStore(), FakeEntitlements()

    outcome = _apply(_sns("subscribe_success", **{"product-code": "prod-someoneelse"}), store)
    license_outcome = _apply(
        _eb("license_updated_manufacturer"), store, entitlements, products=frozenset({"prod-x"})
    )

    assert (outcome, license_outcome) == (
        LifecycleOutcome.IGNORED_PRODUCT,
        LifecycleOutcome.IGNORED_PRODUCT,
    )
    assert store.items == {} and entitlements.queries == []


def test_legacy_notifications_use_the_registration_key() -> None:
    store = FakeStore()

    _apply(_sns("subscribe_success"), store)
    _apply(_sns("unsubscribe_pending"), store)

    assert store.status(LEGACY_PK) is CustomerStatus.UNSUBSCRIBE_PENDING


def test_a_legacy_notification_finds_the_license_keyed_customer_by_its_identifier() -> None:
    # Given a legacy product's buyer registered with a license (keyed by it), and a LEGACY#
    # item an SNS notification created before the buyer registered
    registered = {"license_arn": LICENSE_ARN, "customer_identifier": "Ab1Cd2Ef3Gh"}
    early = {"customer_identifier": "Ab1Cd2Ef3Gh"}
    store = FakeStore(
        items={
            LICENSE_PK: {**registered, "product_code": PRODUCT},
            LEGACY_PK: {**early, "product_code": PRODUCT},
            "LEGACY#prod-other#Ab1Cd2Ef3Gh": {**early, "product_code": "prod-other"},
        }
    )

    _apply(_sns("unsubscribe_pending"), store)

    # Then the registered customer gets the change, and only it
    assert store.status(LICENSE_PK) is CustomerStatus.UNSUBSCRIBE_PENDING
    assert store.writes == [LICENSE_PK]


def test_entitlement_updated_stores_entitlements_without_a_status() -> None:
    store, entitlements = FakeStore(), FakeEntitlements(answer=[])

    outcome = _apply(_sns("entitlement_updated"), store, entitlements)

    # An empty list is an answer: stored, not an error.
    assert outcome is LifecycleOutcome.APPLIED
    assert store.items[LEGACY_PK]["entitlements"] == []
    assert store.status(LEGACY_PK) is None
    assert entitlements.queries == [EntitlementQuery(PRODUCT, customer_identifier="Ab1Cd2Ef3Gh")]


# -- free trials: the agreement's terms (GetAgreementTerms) ----------------------------------

RENEWED = "agmt-2b3c4d5e6f7g8h9i0j1k2l3m4"
LATER = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def test_a_trial_read_when_the_agreement_is_created_reaches_the_customer_of_its_license() -> None:
    # Given the agreement's creation arrives before anybody has its license (the usual order)
    store, terms = FakeStore(), FakeTerms(answers={AGREEMENT: True})
    assert _apply(_eb("agreement_created_manufacturer"), store, terms=terms) is (
        LifecycleOutcome.PARKED
    )
    assert _apply(_eb("agreement_created_proposer"), store, terms=terms) is (
        LifecycleOutcome.PARKED
    )

    # When the license event creates the customer
    _apply(_eb("license_updated_manufacturer"), store, terms=terms)

    # Then the customer records the trial; only the proposer's copy asked, once
    assert store.items[LICENSE_PK]["free_trial"] is True
    assert terms.asked == [AGREEMENT]


def test_a_late_creation_records_the_trial_on_a_customer_with_a_newer_status() -> None:
    store, terms = FakeStore(), FakeTerms(answers={AGREEMENT: False})
    _apply(_eb("license_updated_manufacturer"), store)

    outcome = _apply(_eb("agreement_created_proposer"), store, terms=terms)

    # The status (pending, older) is not recorded, the terms (read now) are.
    assert outcome is LifecycleOutcome.APPLIED
    assert store.status(LICENSE_PK) is CustomerStatus.SUBSCRIBED
    assert store.items[LICENSE_PK]["free_trial"] is False


def test_an_amendment_read_later_replaces_the_trial_and_an_older_reading_does_not() -> None:
    store = FakeStore()
    _apply(_eb("license_updated_manufacturer"), store)
    _apply(_eb("agreement_created_proposer"), store, terms=FakeTerms(answers={AGREEMENT: True}))

    # The buyer upgraded from the trial: the amendment's terms have none
    outcome = _apply(
        _eb("agreement_amended_proposer"),
        store,
        terms=FakeTerms(answers={AGREEMENT: False}),
        now=LATER,
    )
    # A redelivery of the creation, read before the amendment's reading, changes nothing
    redelivered = _apply(
        _eb("agreement_created_proposer"), store, terms=FakeTerms(answers={AGREEMENT: True})
    )

    assert (outcome, redelivered) == (LifecycleOutcome.APPLIED, LifecycleOutcome.STALE)
    assert store.items[LICENSE_PK]["free_trial"] is False


def test_terms_refused_for_good_leave_the_trial_unknown_and_the_status_applies() -> None:
    store = FakeStore()
    _apply(_eb("license_updated_manufacturer"), store)

    outcome = _apply(_eb("agreement_ended_proposer"), store, terms=FakeTerms())
    _apply(_eb("agreement_amended_proposer"), store, terms=FakeTerms(answers={AGREEMENT: None}))

    assert outcome is LifecycleOutcome.APPLIED
    assert "free_trial" not in store.items[LICENSE_PK]


def test_terms_unavailable_fail_the_notification_before_any_write() -> None:
    store = FakeStore()

    with pytest.raises(AgreementTermsUnavailableError):
        _apply(_eb("agreement_created_proposer"), store, terms=FakeTerms(failing=True))

    assert (store.items, store.parked, store.parked_terms) == ({}, {}, {})


def test_terms_of_an_agreement_the_customer_has_left_are_not_recorded() -> None:
    # Given a customer a renewal moved on to a new agreement
    store = FakeStore(items={LICENSE_PK: {"agreement_id": RENEWED, "agreement_at": "9"}})

    # When the old agreement's terms are read
    _apply(_eb("agreement_amended_proposer"), store, terms=FakeTerms(answers={AGREEMENT: True}))

    assert "free_trial" not in store.items[LICENSE_PK]


@pytest.mark.parametrize("first", ["manufacturer", "proposer"])
def test_a_renewal_replaces_the_trial_with_the_new_agreements_terms(first: str) -> None:
    # Given a trial customer
    store = FakeStore()
    _apply(_eb("license_updated_manufacturer"), store)
    _apply(_eb("agreement_created_proposer"), store, terms=FakeTerms(answers={AGREEMENT: True}))
    terms = FakeTerms(answers={RENEWED: False})
    second = "proposer" if first == "manufacturer" else "manufacturer"

    # When both roles' copies of the renewal arrive, in either order
    for role in (first, second):
        _apply(
            _eb_payload(renewal(role, RENEWED, AGREEMENT, "2026-12-02T09:00:00Z")),
            store,
            terms=terms,
            now=LATER,
        )

    # Then the customer is on the new agreement, with its terms (no trial)
    item = store.items[LICENSE_PK]
    assert (item["agreement_id"], item["free_trial"]) == (RENEWED, False)
    assert terms.asked == [RENEWED]


def _eb_payload(payload: dict[str, Any]) -> LifecycleNotification:
    return parse_notification(body(payload))
