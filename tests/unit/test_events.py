"""Deriving registration events from changes of the customer item (pure)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from fulfillment.contract import DetailType
from fulfillment.events.derivation import (
    RULES,
    CustomerChange,
    DomainEvent,
    MalformedChangeError,
    MalformedMessageError,
    derive_events,
)

ARN = "arn:aws:license-manager::111122223333:license:l-0123456789abcdef0123456789abcdef"
KEY = "LICENSE#" + ARN
CONTACT = {
    "company": "Example Corp",
    "contact_name": "Jane Doe",
    "email": "jane@example.com",
    "phone": "+1 555 0100",
    "extra": {"team_size": "12"},
}

FIRST: dict[str, Any] = {
    "pk": KEY,
    "sk": "CUSTOMER",
    "entity": "customer",
    "product_code": "prod-abc123",
    "customer_aws_account_id": "111122223333",
    "license_arn": ARN,
    "agreement_id": "agmt-0123",
    "first_registered_at": "2026-11-26T09:15:02.123+00:00",
    "last_registered_at": "2026-11-26T09:15:02.123+00:00",
    "last_registration_id": "reg-1",
    "registration_count": Decimal(1),
}
SECOND = {
    **FIRST,
    "last_registered_at": "2026-11-27T14:40:11.456+00:00",
    "last_registration_id": "reg-2",
    "registration_count": Decimal(2),
}
SIGNED_UP = {
    **SECOND,
    "signed_up_at": "2026-11-27T14:43:30+00:00",
    "signup_registration_id": "reg-2",
}


def _events(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[DomainEvent]:
    return derive_events(CustomerChange(KEY, old, new))


def test_a_first_registration_announces_a_new_customer() -> None:
    (event,) = _events(None, FIRST)

    assert event.detail_type == "Customer Registered"
    assert event.occurred_at == FIRST["last_registered_at"]
    assert event.detail == {
        "eventId": event.event_id,
        "registrationId": "reg-1",
        "productCode": "prod-abc123",
        "customerAWSAccountId": "111122223333",
        "licenseArn": ARN,
        "customerIdentifier": None,
        "agreementId": "agmt-0123",
        "offerId": None,
        "freeTrial": None,
        "firstRegistration": True,
        "registeredAt": "2026-11-26T09:15:02.123+00:00",
        "registrationCount": 1,
    }
    assert len(event.event_id) == 64


def test_a_returning_registration_is_announced_as_not_the_first() -> None:
    (event,) = _events(FIRST, SECOND)

    assert event.detail_type == DetailType.CUSTOMER_REGISTERED
    assert event.detail["firstRegistration"] is False
    assert event.detail["registrationCount"] == 2
    assert event.detail["registrationId"] == "reg-2"


def test_a_registration_of_a_customer_a_notification_created_first_is_its_first() -> None:
    # Given an item the lifecycle processor wrote before the buyer registered
    pending = {"pk": KEY, "sk": "CUSTOMER", "status": "pending", "license_arn": ARN}

    (event,) = _events(pending, {**FIRST, "status": "pending"})

    assert event.detail_type == "Customer Registered"
    assert event.detail["firstRegistration"] is True


def test_a_sign_up_announces_its_registration_and_time() -> None:
    (event,) = _events(SECOND, SIGNED_UP)

    assert event.detail_type == "Customer Signed Up"
    assert event.occurred_at == "2026-11-27T14:43:30+00:00"
    assert event.detail == {
        "eventId": event.event_id,
        "registrationId": "reg-2",
        "productCode": "prod-abc123",
        "customerAWSAccountId": "111122223333",
        "licenseArn": ARN,
        "customerIdentifier": None,
        "agreementId": "agmt-0123",
        "offerId": None,
        "freeTrial": None,
        "signedUpAt": "2026-11-27T14:43:30+00:00",
    }


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param(
            SIGNED_UP, {**SIGNED_UP, "entitlements_updated_at": "2026-11-28"}, id="other attribute"
        ),
        pytest.param(SIGNED_UP, SIGNED_UP, id="rewrite of the same values"),
        pytest.param({**SECOND, "registration_count": Decimal(3)}, SECOND, id="count went down"),
        pytest.param(
            None, {"pk": KEY, "sk": "CUSTOMER", "entitlements": []}, id="item without status"
        ),
        pytest.param(SIGNED_UP, None, id="REMOVE"),
    ],
)
def test_changes_that_announce_nothing(
    old: dict[str, Any] | None, new: dict[str, Any] | None
) -> None:
    assert _events(old, new) == []


def test_a_registration_that_also_brings_a_sign_up_announces_both() -> None:
    events = _events(FIRST, SIGNED_UP)

    assert [e.detail_type for e in events] == ["Customer Registered", "Customer Signed Up"]
    assert len({e.event_id for e in events}) == 2


def test_contact_details_never_reach_an_event_even_when_the_image_holds_them() -> None:
    # Given images that (against the design) carry contact details
    old, new = {**FIRST, **CONTACT}, {**SIGNED_UP, **CONTACT}

    events = _events(None, new) + _events(old, new)

    assert {e.detail_type for e in events} == {"Customer Registered", "Customer Signed Up"}
    for event in events:
        text = event.to_message() + event.to_detail_json()
        for name, value in CONTACT.items():
            assert name not in event.detail
            assert json.dumps(value).strip('"{}') not in text


def test_event_ids_are_stable_per_change_and_differ_between_changes() -> None:
    first_try = _events(None, FIRST)[0].event_id
    retry = _events(None, FIRST)[0].event_id
    returning = _events(FIRST, SECOND)[0].event_id
    other_customer = derive_events(CustomerChange("LICENSE#other", None, FIRST))[0].event_id

    assert first_try == retry
    assert len({first_try, returning, other_customer}) == 3


def test_a_legacy_customer_carries_its_identifier() -> None:
    legacy = {**FIRST, "pk": "LEGACY#prod-abc123#cust-1", "customer_identifier": "cust-1"}
    del legacy["license_arn"]

    (event,) = derive_events(CustomerChange("LEGACY#prod-abc123#cust-1", None, legacy))

    assert event.detail["customerIdentifier"] == "cust-1"
    assert event.detail["licenseArn"] is None


SUBSCRIBED = {
    **FIRST,
    "status": "subscribed",
    "status_changed_at": "2026-11-26T09:01:00.000+00:00",
    "offer_id": "offer-abc",
}
TRIAL = {**SUBSCRIBED, "free_trial": True, "agreement_terms_checked_at": "2026-11-26T09:01:02.5"}


def test_a_free_trial_read_after_the_status_is_announced_on_its_own() -> None:
    (event,) = _events(SUBSCRIBED, TRIAL)

    assert event.detail_type == "Customer Free Trial Changed"
    assert event.occurred_at == "2026-11-26T09:01:02.5"
    assert event.detail["freeTrial"] is True
    assert event.detail["previousFreeTrial"] is None
    assert event.detail["offerId"] == "offer-abc"
    assert event.detail["knownAt"] == "2026-11-26T09:01:02.5"


def test_a_free_trial_is_announced_when_it_changes_and_only_then() -> None:
    ended = {**TRIAL, "free_trial": False, "agreement_terms_checked_at": "2026-12-01"}
    renewed = {**TRIAL, "agreement_id": "agmt-4567"}

    (upgraded,) = _events(TRIAL, ended)
    reread = _events(TRIAL, {**TRIAL, "agreement_terms_checked_at": "2026-12-02"})
    (on_renewal,) = _events(ended, renewed)

    assert (upgraded.detail["previousFreeTrial"], upgraded.detail["freeTrial"]) == (True, False)
    assert reread == []
    assert on_renewal.event_id != _events(SUBSCRIBED, TRIAL)[0].event_id


def test_a_legacy_trial_is_announced_with_its_status() -> None:
    legacy = {**SUBSCRIBED, "free_trial": True}

    events = {e.detail_type: e for e in _events(FIRST, legacy)}

    assert events["Customer Status Changed"].detail["freeTrial"] is True
    assert events["Customer Free Trial Changed"].detail["knownAt"] == legacy["status_changed_at"]


@pytest.mark.parametrize("count", ["1", Decimal("1.5"), True])
def test_a_count_that_is_not_a_whole_number_is_malformed(count: object) -> None:
    with pytest.raises(MalformedChangeError):
        _events(None, {**FIRST, "registration_count": count})


def test_every_rule_has_its_own_detail_type_and_trigger() -> None:
    assert len({r.detail_type for r in RULES}) == len({r.trigger for r in RULES}) == len(RULES)


def test_an_event_survives_the_retry_queue_unchanged() -> None:
    (event,) = _events(SECOND, SIGNED_UP)

    assert DomainEvent.from_message(event.to_message()) == event


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[]",
        '{"version": 2}',
        '{"version": 1, "source": "other", "detailType": "x", "detail": {"eventId": "e"}}',
        '{"version": 1, "source": "fulfillment.registration", "detailType": "x", "detail": {}}',
    ],
)
def test_a_message_that_is_not_ours_is_malformed(body: str) -> None:
    with pytest.raises(MalformedMessageError):
        DomainEvent.from_message(body)
