"""Registration events: derived from changes of the customer item, delivered at least once.

Pure domain: a change is the customer item before and after one write (plain Python values,
as the DynamoDB stream's images decode to); each rule in RULES turns the change of one
attribute into one event. An event's detail is built from an allow-list of the customer's
Marketplace identity, so contact details can never leak into it. Delivery goes through two
ports: the event bus, and a retry queue that keeps what the bus refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, NamedTuple, Protocol

from fulfillment.contract import REGISTRATION_EVENT_SOURCE, DetailType
from fulfillment.customers.status import TERMS_CHECKED_AT

# Format version of a retry-queue message (see DomainEvent.to_message).
MESSAGE_VERSION = 1
# PutEvents takes at most 10 entries per call, SendMessageBatch at most 10 messages.
MAX_BATCH = 10


Image = Mapping[str, Any]


class CustomerChange(NamedTuple):
    """One write to a customer item: its key and both images (None: no such image)."""

    customer_key: str
    old: Image | None
    new: Image | None


class DomainEvent(NamedTuple):
    """One event for the bus; ``event_id`` (also in the detail) is stable across retries."""

    detail_type: str
    detail: Mapping[str, Any]
    occurred_at: str | None

    @property
    def event_id(self) -> str:
        return str(self.detail["eventId"])

    def to_detail_json(self) -> str:
        return json.dumps(dict(self.detail), sort_keys=True)

    def to_message(self) -> str:
        """The retry queue's message body: everything needed to publish the event again."""
        return json.dumps(
            {
                "version": MESSAGE_VERSION,
                "source": REGISTRATION_EVENT_SOURCE,
                "detailType": self.detail_type,
                "detail": dict(self.detail),
                "occurredAt": self.occurred_at,
            },
            sort_keys=True,
        )

    @classmethod
    def from_message(cls, body: str) -> DomainEvent:
        """Parse a retry-queue message; raise MalformedMessageError if it is not one of ours."""
        try:
            message = json.loads(body)
        except ValueError:
            raise MalformedMessageError("not JSON") from None
        if not isinstance(message, dict) or message.get("version") != MESSAGE_VERSION:
            raise MalformedMessageError("unknown message version")
        detail, detail_type = message.get("detail"), message.get("detailType")
        occurred_at = message.get("occurredAt")
        if (
            message.get("source") != REGISTRATION_EVENT_SOURCE
            or not isinstance(detail_type, str)
            or not isinstance(detail, dict)
            or not isinstance(detail.get("eventId"), str)
            or not (occurred_at is None or isinstance(occurred_at, str))
        ):
            raise MalformedMessageError("not a registration event")
        return cls(detail_type=detail_type, detail=detail, occurred_at=occurred_at)


class MalformedChangeError(ValueError):
    """A customer image holds a value of the wrong type for an event field."""


class MalformedMessageError(ValueError):
    """A retry-queue message is not an event this function wrote."""


class EventBusUnavailableError(Exception):
    """The bus refused a whole PutEvents call (after the SDK's retries)."""


class RetryQueueUnavailableError(Exception):
    """The retry queue refused to keep events (after the SDK's retries)."""


# -- ports ---------------------------------------------------------------------------------


class EventBus(Protocol):
    def put(self, events: Sequence[DomainEvent]) -> list[DomainEvent]:
        """Publish up to MAX_BATCH events; return those the bus refused.

        Raise EventBusUnavailableError when the call as a whole failed."""
        ...


class RetryQueue(Protocol):
    def keep(self, events: Sequence[DomainEvent]) -> list[DomainEvent]:
        """Queue up to MAX_BATCH events for a later publish; return those it could not take.

        Raise RetryQueueUnavailableError when the call as a whole failed."""
        ...


# -- derivation ----------------------------------------------------------------------------


def _text(image: Image, name: str) -> str | None:
    value = image.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MalformedChangeError(f"{name} is not a string")
    return value


def _count(image: Image | None, name: str) -> int | None:
    if image is None or image.get(name) is None:
        return None
    value = image[name]
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise MalformedChangeError(f"{name} is not a number")
    if value != int(value):
        raise MalformedChangeError(f"{name} is not a whole number")
    return int(value)


def _flag(image: Image | None, name: str) -> bool | None:
    if image is None or image.get(name) is None:
        return None
    value = image[name]
    if not isinstance(value, bool):
        raise MalformedChangeError(f"{name} is not a boolean")
    return value


def _identity(image: Image) -> dict[str, Any]:
    """The customer's Marketplace identity and agreement (its offer, whether it has a free
    trial): the only customer data an event carries."""
    return {
        "productCode": _text(image, "product_code"),
        "customerAWSAccountId": _text(image, "customer_aws_account_id"),
        "licenseArn": _text(image, "license_arn"),
        "customerIdentifier": _text(image, "customer_identifier"),
        "agreementId": _text(image, "agreement_id"),
        "offerId": _text(image, "offer_id"),
        "freeTrial": _flag(image, "free_trial"),
    }


def _registered(change: CustomerChange) -> tuple[dict[str, Any], str | None] | None:
    assert change.new is not None
    count = _count(change.new, "registration_count")
    previous = _count(change.old, "registration_count")
    if count is None or (previous is not None and count <= previous):
        return None
    registered_at = _text(change.new, "last_registered_at")
    detail = {
        "registrationId": _text(change.new, "last_registration_id"),
        **_identity(change.new),
        # An item the lifecycle processor created first has no count before the registration.
        "firstRegistration": previous is None,
        "registeredAt": registered_at,
        "registrationCount": count,
    }
    return detail, registered_at


def _signed_up(change: CustomerChange) -> tuple[dict[str, Any], str | None] | None:
    assert change.new is not None
    signed_up_at = _text(change.new, "signed_up_at")
    if signed_up_at is None or (change.old and _text(change.old, "signed_up_at") == signed_up_at):
        return None
    detail = {
        "registrationId": _text(change.new, "signup_registration_id"),
        **_identity(change.new),
        "signedUpAt": signed_up_at,
    }
    return detail, signed_up_at


def _status_changed(change: CustomerChange) -> tuple[dict[str, Any], str | None] | None:
    assert change.new is not None
    status = _text(change.new, "status")
    previous = _text(change.old, "status") if change.old else None
    if status is None or status == previous:
        return None
    changed_at = _text(change.new, "status_changed_at")
    detail = {
        **_identity(change.new),
        "previousStatus": previous,
        "status": status,
        # The Marketplace notification's time, not when it was processed.
        "statusChangedAt": changed_at,
        "source": _text(change.new, "status_source"),
    }
    return detail, changed_at


def _free_trial_changed(change: CustomerChange) -> tuple[dict[str, Any], str | None] | None:
    assert change.new is not None
    free_trial = _flag(change.new, "free_trial")
    previous = _flag(change.old, "free_trial")
    if free_trial is None or free_trial == previous:
        return None
    # When the agreement's terms were read; a legacy SNS notification says it with its status.
    known_at = _text(change.new, TERMS_CHECKED_AT) or _text(change.new, "status_changed_at")
    detail = {**_identity(change.new), "previousFreeTrial": previous, "knownAt": known_at}
    return detail, known_at


def _free_trial_change_id(image: Image) -> object:
    # The agreement and the answer: a renewal's new agreement announces its own.
    return f"{image.get('agreement_id')}#{image.get('free_trial')}"


def _status_change_id(image: Image) -> object:
    # Time and status: a customer can return to an earlier status later (a new id), and two
    # changes can share one event time (EventBridge times have one-second resolution).
    return f"{image.get('status_changed_at')}#{image.get('status')}"


class EventRule(NamedTuple):
    """An event that a change of ``trigger`` on the customer item announces.

    ``detail`` returns the event's detail and time, or None when the change does not count
    (the attribute did not change, or moved in a direction that announces nothing).
    """

    detail_type: DetailType
    trigger: str
    detail: Callable[[CustomerChange], tuple[dict[str, Any], str | None] | None]
    # What identifies one change of ``trigger`` in the event id (default: its new value).
    change_id: Callable[[Image], object] | None = None


# One rule per event type.
RULES: tuple[EventRule, ...] = (
    EventRule(DetailType.CUSTOMER_REGISTERED, "registration_count", _registered),
    EventRule(DetailType.CUSTOMER_SIGNED_UP, "signed_up_at", _signed_up),
    EventRule(DetailType.CUSTOMER_STATUS_CHANGED, "status", _status_changed, _status_change_id),
    EventRule(
        DetailType.CUSTOMER_FREE_TRIAL_CHANGED,
        "free_trial",
        _free_trial_changed,
        _free_trial_change_id,
    ),
)


def event_id(customer_key: str, detail_type: str, trigger: str, value: object) -> str:
    """The same change always gets the same id, so consumers can drop redeliveries."""
    material = "\n".join((customer_key, detail_type, trigger, str(value)))
    return hashlib.sha256(material.encode()).hexdigest()


def derive_events(change: CustomerChange, rules: Iterable[EventRule] = RULES) -> list[DomainEvent]:
    """The events one write to a customer item announces; none for a removal."""
    if change.new is None:
        return []
    events = []
    for rule in rules:
        derived = rule.detail(change)
        if derived is None:
            continue
        detail, occurred_at = derived
        value = rule.change_id(change.new) if rule.change_id else change.new.get(rule.trigger)
        identifier = event_id(change.customer_key, rule.detail_type, rule.trigger, value)
        events.append(
            DomainEvent(
                detail_type=rule.detail_type,
                detail={"eventId": identifier, **detail},
                occurred_at=occurred_at,
            )
        )
    return events


# -- delivery ------------------------------------------------------------------------------


def _chunks(events: Sequence[DomainEvent]) -> Iterable[Sequence[DomainEvent]]:
    for start in range(0, len(events), MAX_BATCH):
        yield events[start : start + MAX_BATCH]


def publish(events: Sequence[DomainEvent], bus: EventBus) -> list[DomainEvent]:
    """Put ``events`` on the bus in batches; return the ones it did not take."""
    refused: list[DomainEvent] = []
    for chunk in _chunks(events):
        try:
            refused += bus.put(chunk)
        except EventBusUnavailableError:
            refused += chunk
    return refused


def deliver(
    changes: Mapping[str, CustomerChange], *, bus: EventBus, retry_queue: RetryQueue
) -> set[str]:
    """Publish the events of ``changes`` (keyed by the caller's record id), parking refused
    ones on the retry queue; return the ids of changes with an event neither took."""
    undelivered: set[str] = set()
    events_of: dict[str, list[DomainEvent]] = {}
    for record_id, change in changes.items():
        try:
            events_of[record_id] = derive_events(change)
        except MalformedChangeError:
            undelivered.add(record_id)
    pending = [event for events in events_of.values() for event in events]
    lost: set[str] = set()
    refused = publish(pending, bus)
    for chunk in _chunks(refused):
        try:
            lost |= {event.event_id for event in retry_queue.keep(chunk)}
        except RetryQueueUnavailableError:
            lost |= {event.event_id for event in chunk}
    undelivered |= {
        record_id
        for record_id, events in events_of.items()
        if any(event.event_id in lost for event in events)
    }
    return undelivered


def republish(events: Mapping[str, DomainEvent], *, bus: EventBus) -> set[str]:
    """Publish events read back from the retry queue (keyed by message id); return the ids
    of those the bus still refused, which stay on the queue for another attempt."""
    ids_of: dict[str, set[str]] = {}
    for message_id, event in events.items():
        ids_of.setdefault(event.event_id, set()).add(message_id)
    # One publish per distinct event: the queue may hold the same event twice.
    unique = list({event.event_id: event for event in events.values()}.values())
    refused = publish(unique, bus)
    return {message_id for event in refused for message_id in ids_of[event.event_id]}
