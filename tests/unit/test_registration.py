"""The registration use case against in-memory fakes of its ports."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from fulfillment.customers.models import ResolvedCustomer
from fulfillment.registration.errors import ExpiredTokenError, UnknownProductError
from fulfillment.registration.use_case import register
from tests.unit.fakes import FakeCustomerStore, FakeMarketplace, FakeRecoveryQueue

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
PRODUCT = "prod-abc"
NEW_STYLE = ResolvedCustomer(
    PRODUCT, "111122223333", "arn:aws:license-manager::111122223333:license:l-1", None, "agmt-1"
)
SECOND_LICENSE = ResolvedCustomer(
    PRODUCT, "111122223333", "arn:aws:license-manager::111122223333:license:l-2", None, "agmt-2"
)
LEGACY = ResolvedCustomer(PRODUCT, "444455556666", None, "Ab1Cd2Ef3Gh", None)


def _register(
    marketplace: FakeMarketplace,
    store: FakeCustomerStore,
    token: str,
    products: frozenset[str] = frozenset({PRODUCT}),
):
    return register(
        token,
        marketplace=marketplace,
        customers=store,
        recovery=FakeRecoveryQueue(),
        product_codes=products,
        now=NOW,
        session_ttl_seconds=3600,
        request_id="req-1",
    )


def test_first_registration_records_a_new_customer_and_opens_a_session() -> None:
    # Given a token that resolves to a new-style customer
    marketplace = FakeMarketplace({"t1": NEW_STYLE})
    store = FakeCustomerStore()

    # When it is registered
    outcome = _register(marketplace, store, "t1")

    # Then the customer is new and a session refers to it, expiring after the TTL
    assert outcome.new_customer is True
    assert store.sessions[outcome.session_id] == (
        "LICENSE#l-1",
        PRODUCT,
        int(NOW.timestamp()) + 3600,
    )
    assert outcome.session_expires_at == int(NOW.timestamp()) + 3600


def test_session_ids_are_unguessable() -> None:
    marketplace = FakeMarketplace({"t1": NEW_STYLE})
    store = FakeCustomerStore()

    ids = {_register(marketplace, store, "t1").session_id for _ in range(50)}

    assert len(ids) == 50
    for session_id in ids:
        assert len(base64.urlsafe_b64decode(session_id + "==")) * 8 >= 128


def test_returning_customer_is_not_new() -> None:
    marketplace = FakeMarketplace({"t1": NEW_STYLE, "t2": NEW_STYLE})
    store = FakeCustomerStore()

    _register(marketplace, store, "t1")
    outcome = _register(marketplace, store, "t2")

    assert outcome.new_customer is False


def test_two_licenses_of_one_account_are_two_customers() -> None:
    marketplace = FakeMarketplace({"t1": NEW_STYLE, "t2": SECOND_LICENSE})
    store = FakeCustomerStore()

    first = _register(marketplace, store, "t1")
    second = _register(marketplace, store, "t2")

    assert first.new_customer and second.new_customer
    assert first.customer_key != second.customer_key


def test_legacy_customer_is_keyed_on_its_identifier() -> None:
    outcome = _register(FakeMarketplace({"t": LEGACY}), FakeCustomerStore(), "t")

    assert outcome.customer_key == f"LEGACY#{PRODUCT}#Ab1Cd2Ef3Gh"


def test_legacy_customer_with_a_license_is_keyed_on_the_license() -> None:
    licensed = LEGACY._replace(license_arn="arn:aws:license-manager::111122223333:license:l-3")

    outcome = _register(FakeMarketplace({"t": licensed}), FakeCustomerStore(), "t")

    # The key License Updated events (which carry no identifier) name too
    assert outcome.customer_key == "LICENSE#l-3"


def test_unknown_product_is_refused_and_nothing_is_stored() -> None:
    store = FakeCustomerStore()

    with pytest.raises(UnknownProductError):
        _register(FakeMarketplace({"t": NEW_STYLE}), store, "t", frozenset({"prod-other"}))

    assert store.registrations == {}
    assert store.sessions == {}


def test_marketplace_errors_propagate_and_nothing_is_stored() -> None:
    store = FakeCustomerStore()
    marketplace = FakeMarketplace(error=ExpiredTokenError("ExpiredTokenException"))

    with pytest.raises(ExpiredTokenError):
        _register(marketplace, store, "t")

    assert store.registrations == {} and store.sessions == {}


def test_outcome_log_reference_hides_the_customer_key() -> None:
    outcome = _register(FakeMarketplace({"t": LEGACY}), FakeCustomerStore(), "t")

    assert "Ab1Cd2Ef3Gh" not in outcome.customer_ref
    assert len(outcome.customer_ref) == 16
