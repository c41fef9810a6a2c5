"""Parsing lifecycle queue bodies: EventBridge events and SNS envelopes (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from fulfillment.contract import NotificationType
from fulfillment.lifecycle.notifications import (
    MalformedNotificationError,
    MalformedReason,
    NotificationFormat,
    UnhandledDetailTypeError,
    parse_notification,
)
from tests.lifecycle_events import (
    ACCOUNT,
    AGREEMENT,
    LEGACY_ID,
    LICENSE_ARN,
    PRODUCT,
    body,
    event,
    eventbridge_names,
    renewal,
    sns_envelope,
    sns_names,
)


@pytest.mark.parametrize("name", eventbridge_names())
def test_every_documented_eventbridge_event_parses(name: str) -> None:
    payload = event(name)

    notification = parse_notification(body(payload))

    base, role = payload["detail-type"].rsplit(" - ", 1)
    assert notification.event_type == NotificationType(base)
    assert notification.role == role
    assert notification.format is NotificationFormat.EVENTBRIDGE
    assert notification.message_id == payload["id"]
    assert notification.occurred_at == datetime.fromisoformat(payload["time"])
    assert notification.agreement_id == AGREEMENT
    assert notification.customer_aws_account_id == ACCOUNT
    assert notification.offer_id == "offer-uovnpk2f6jq7s"
    assert notification.customer_identifier is None
    assert notification.free_trial is None
    if name.startswith("license"):
        assert (notification.product_code, notification.license_arn) == (PRODUCT, LICENSE_ARN)
    else:
        # As documented: agreement events name neither the product nor the license.
        assert (notification.product_code, notification.license_arn) == (None, None)


def test_agreement_status_is_kept_for_ended_agreements() -> None:
    notification = parse_notification(body(event("agreement_ended_proposer")))

    assert notification.agreement_status == "CANCELLED"


@pytest.mark.parametrize("name", sns_names())
def test_every_documented_sns_message_parses(name: str) -> None:
    envelope = sns_envelope(name)
    message = json.loads(envelope["Message"])

    notification = parse_notification(body(envelope))

    assert notification.event_type == NotificationType(message["action"])
    assert notification.format is NotificationFormat.SNS
    assert notification.message_id == envelope["MessageId"]
    # SNS's publish time: the message has none of its own.
    assert notification.occurred_at == datetime.fromisoformat(envelope["Timestamp"])
    assert notification.product_code == PRODUCT
    assert notification.customer_identifier == LEGACY_ID
    assert notification.offer_id == message.get("offer-identifier")
    expected_trial = {"true": True, "false": False, None: None}[
        message.get("isFreeTrialTermPresent")
    ]
    assert notification.free_trial is expected_trial
    assert notification.license_arn is None and notification.agreement_id is None


def test_the_documented_license_arn_without_its_prefix_names_the_same_license() -> None:
    payload = event("license_updated_manufacturer")
    payload["detail"]["license"]["arn"] = LICENSE_ARN.removeprefix("arn:")

    assert parse_notification(body(payload)).license_arn == LICENSE_ARN


def test_the_documented_padded_customer_identifier_is_trimmed() -> None:
    envelope = sns_envelope("subscribe_success", message={"customer-identifier": " Ab1Cd2Ef3Gh"})

    assert parse_notification(body(envelope)).customer_identifier == LEGACY_ID


def test_a_boolean_free_trial_flag_is_accepted_too() -> None:
    envelope = sns_envelope("subscribe_success", message={"isFreeTrialTermPresent": False})

    assert parse_notification(body(envelope)).free_trial is False


def test_times_are_normalised_to_utc() -> None:
    envelope = sns_envelope("subscribe_success", Timestamp="2026-11-26T10:00:05.120+01:00")

    assert parse_notification(body(envelope)).occurred_at == datetime(
        2026, 11, 26, 9, 0, 5, 120000, tzinfo=UTC
    )


def _without(payload: dict[str, Any], *path: str) -> dict[str, Any]:
    target = payload
    for name in path[:-1]:
        target = target[name]
    del target[path[-1]]
    return payload


def _poison() -> list[Any]:
    license_event = event("license_updated_manufacturer")
    return [
        pytest.param("", MalformedReason.NOT_JSON, id="empty"),
        pytest.param("not json", MalformedReason.NOT_JSON, id="not json"),
        pytest.param("[1, 2]", MalformedReason.UNKNOWN_FORMAT, id="a list"),
        pytest.param("{}", MalformedReason.UNKNOWN_FORMAT, id="empty object"),
        pytest.param("x" * 70_000, MalformedReason.TOO_LARGE, id="huge"),
        pytest.param(
            body({**license_event, "source": "aws.marketplacecatalog"}),
            MalformedReason.UNKNOWN_FORMAT,
            id="other source",
        ),
        pytest.param(
            body({**license_event, "detail-type": 7}),
            MalformedReason.INVALID_FIELD,
            id="detail type not a string",
        ),
        pytest.param(
            body(_without(event("license_updated_proposer"), "detail", "license")),
            MalformedReason.MISSING_FIELD,
            id="license event without license",
        ),
        pytest.param(
            body(_without(event("license_updated_proposer"), "detail", "product", "code")),
            MalformedReason.MISSING_FIELD,
            id="license event without product code",
        ),
        pytest.param(
            body(_without(event("agreement_created_proposer"), "detail", "agreement", "id")),
            MalformedReason.MISSING_FIELD,
            id="agreement event without agreement id",
        ),
        pytest.param(
            body({**license_event, "time": "yesterday"}),
            MalformedReason.INVALID_TIME,
            id="bad time",
        ),
        pytest.param(
            body({**license_event, "time": "2026-11-26T09:01:00"}),
            MalformedReason.INVALID_TIME,
            id="time without zone",
        ),
        pytest.param(
            body({**license_event, "detail": "text"}),
            MalformedReason.MISSING_FIELD,
            id="detail not an object",
        ),
        pytest.param(
            body(sns_envelope("subscribe_success", message={"product-code": "bad code!"})),
            MalformedReason.INVALID_FIELD,
            id="bad product code",
        ),
        pytest.param(
            body(sns_envelope("subscribe_success", message={"customer-identifier": ""})),
            MalformedReason.MISSING_FIELD,
            id="empty customer identifier",
        ),
        pytest.param(
            body(sns_envelope("subscribe_success", message={"action": "subscribe-maybe"})),
            MalformedReason.UNKNOWN_EVENT_TYPE,
            id="unknown action",
        ),
        pytest.param(
            body(sns_envelope("subscribe_success", message={"isFreeTrialTermPresent": "yes"})),
            MalformedReason.INVALID_FIELD,
            id="bad free-trial flag",
        ),
        pytest.param(
            body(sns_envelope("subscribe_success", Message="{not json")),
            MalformedReason.NOT_JSON,
            id="SNS message not JSON",
        ),
        pytest.param(
            body(sns_envelope("subscribe_success", Timestamp=None)),
            MalformedReason.MISSING_FIELD,
            id="SNS without timestamp",
        ),
        pytest.param(
            # Raw message delivery: the Marketplace message without its envelope.
            sns_envelope("subscribe_success")["Message"],
            MalformedReason.UNKNOWN_FORMAT,
            id="raw SNS delivery",
        ),
    ]


@pytest.mark.parametrize(("raw", "reason"), _poison())
def test_poison_bodies_raise_a_typed_error(raw: str, reason: MalformedReason) -> None:
    with pytest.raises(MalformedNotificationError) as caught:
        parse_notification(raw)

    assert caught.value.reason is reason


@pytest.mark.parametrize(
    "detail_type",
    [
        "Offer Released",
        "License Updated - Acceptor",
        "Purchase Agreement Ending - Proposer",
        "Purchase Agreement Created",
    ],
)
def test_a_marketplace_event_of_an_unhandled_detail_type_is_not_poison(detail_type: str) -> None:
    # Even without the fields a handled type needs: it is acknowledged, not judged.
    payload = {**event("license_updated_manufacturer"), "detail-type": detail_type, "detail": {}}

    with pytest.raises(UnhandledDetailTypeError) as caught:
        parse_notification(body(payload))

    assert caught.value.detail_type == detail_type
    assert caught.value.message_id == payload["id"]


def test_a_renewal_names_the_agreement_it_succeeds() -> None:
    payload = renewal("proposer", "agmt-new", AGREEMENT, "2027-11-26T08:59:59Z")

    notification = parse_notification(body(payload))

    assert notification.agreement_id == "agmt-new"
    assert notification.previous_agreement_id == AGREEMENT
    assert (
        parse_notification(body(event("agreement_created_proposer"))).previous_agreement_id is None
    )
