"""`Customer Status Changed`: derived from changes of the customer item's status (pure)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fulfillment.events.derivation import CustomerChange, DomainEvent, derive_events

ARN = "arn:aws:license-manager::111122223333:license:l-0123456789abcdef0123456789abcdef"
KEY = "LICENSE#" + ARN
REGISTERED: dict[str, Any] = {
    "pk": KEY,
    "sk": "CUSTOMER",
    "entity": "customer",
    "product_code": "prod-abc123",
    "customer_aws_account_id": "111122223333",
    "license_arn": ARN,
    "agreement_id": "agmt-0123",
    "registration_count": Decimal(1),
    "last_registration_id": "reg-1",
}
SUBSCRIBED = {
    **REGISTERED,
    "status": "subscribed",
    "status_changed_at": "2026-11-26T09:01:00.000+00:00",
    "status_source": "License Updated",
    "status_rank": Decimal(2),
    "offer_id": "offer-1",
    "entitlements": [{"dimension": "Seats", "type": "integer", "value": Decimal(25)}],
}
ENDED = {
    **SUBSCRIBED,
    "status": "unsubscribed",
    "status_changed_at": "2026-12-01T12:00:00.000+00:00",
    "status_source": "Purchase Agreement Ended",
}


def _status_events(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[DomainEvent]:
    return [
        e
        for e in derive_events(CustomerChange(KEY, old, new))
        if e.detail_type == "Customer Status Changed"
    ]


def test_a_status_change_announces_both_statuses_and_the_notifications_time() -> None:
    (event,) = _status_events(SUBSCRIBED, ENDED)

    assert event.occurred_at == "2026-12-01T12:00:00.000+00:00"
    assert event.detail == {
        "eventId": event.event_id,
        "productCode": "prod-abc123",
        "customerAWSAccountId": "111122223333",
        "licenseArn": ARN,
        "customerIdentifier": None,
        "agreementId": "agmt-0123",
        "offerId": "offer-1",
        "freeTrial": None,
        "previousStatus": "subscribed",
        "status": "unsubscribed",
        "statusChangedAt": "2026-12-01T12:00:00.000+00:00",
        "source": "Purchase Agreement Ended",
    }


def test_a_customer_created_by_a_notification_has_no_previous_status() -> None:
    pending = {"pk": KEY, "sk": "CUSTOMER", "license_arn": ARN, "status": "pending"}

    (event,) = _status_events(None, pending)

    assert event.detail["previousStatus"] is None
    assert event.detail["status"] == "pending"


def test_the_first_status_of_a_registered_customer_is_announced() -> None:
    (event,) = _status_events(REGISTERED, SUBSCRIBED)

    assert (event.detail["previousStatus"], event.detail["status"]) == (None, "subscribed")


def test_writes_that_keep_the_status_announce_no_status_change() -> None:
    refreshed = {**SUBSCRIBED, "entitlements": [], "entitlements_updated_at": "2026-11-30"}
    registered_again = {**SUBSCRIBED, "registration_count": Decimal(2)}

    assert _status_events(SUBSCRIBED, refreshed) == []
    assert _status_events(SUBSCRIBED, registered_again) == []
    assert _status_events(SUBSCRIBED, None) == []


def test_no_contact_or_entitlement_details_leak_into_the_event() -> None:
    # The offer is the agreement's, and is in the event; entitlements and contacts never are.
    noisy = {**ENDED, "email": "jane@example.com", "company": "Example Corp"}

    (event,) = _status_events(SUBSCRIBED, noisy)

    text = event.to_detail_json()
    assert "jane@example.com" not in text and "Example Corp" not in text
    assert "Seats" not in text and "entitlements" not in text


def test_the_event_id_is_stable_per_change_and_new_for_a_return_to_an_old_status() -> None:
    (first,) = _status_events(SUBSCRIBED, ENDED)
    (redelivered,) = _status_events(SUBSCRIBED, ENDED)
    resubscribed = {
        **ENDED,
        "status": "subscribed",
        "status_changed_at": "2027-01-05T08:00:00.000+00:00",
        "status_source": "License Updated",
    }
    (again,) = _status_events(ENDED, resubscribed)
    same_second = {**ENDED, "status": "deprovisioned", "status_source": "License Deprovisioned"}
    (deprovisioned,) = _status_events(ENDED, same_second)

    assert first.event_id == redelivered.event_id
    assert len({first.event_id, again.event_id, deprovisioned.event_id}) == 3
