"""Lifecycle notifications as they arrive on the lifecycle queue, parsed into one typed shape.

Pure: a message body (a string) in, a LifecycleNotification out, or a
MalformedNotificationError (poison: fails), or an UnhandledDetailTypeError (a well-formed
Marketplace event of a detail type not handled here: acknowledged). Two formats share the
queue:

- an **EventBridge event** (an EventBridge rule targeting SQS delivers the event JSON as the
  body): source `aws.agreement-marketplace`, detail types `Purchase Agreement Created|Amended|
  Ended` and `License Updated|Deprovisioned`, each `- Manufacturer` or `- Proposer`;
- an **SNS envelope** (an SNS subscription to SQS without raw delivery): `Type` Notification,
  `Message` = the legacy Marketplace message as a JSON string (`action`, `customer-identifier`,
  `product-code`, `offer-identifier`, `isFreeTrialTermPresent`).

Shapes: AWS Marketplace Seller Guide, "Amazon EventBridge events" and "SaaS product
notifications" (see tests/fixtures/lifecycle/README.md for the addresses).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple

from fulfillment.contract import (
    AGREEMENT_DETAIL_TYPES,
    LICENSE_DETAIL_TYPES,
    MARKETPLACE_EVENT_SOURCE,
    NotificationType,
)
from fulfillment.customers.licenses import InvalidLicenseArnError, parse_license_arn

SNS_NOTIFICATION = "Notification"
# Far above any Marketplace message; a larger body is refused before JSON parsing.
MAX_BODY_CHARS = 64 * 1024


EVENTBRIDGE_TYPES = frozenset(
    {
        NotificationType.AGREEMENT_CREATED,
        NotificationType.AGREEMENT_AMENDED,
        NotificationType.AGREEMENT_ENDED,
        NotificationType.LICENSE_UPDATED,
        NotificationType.LICENSE_DEPROVISIONED,
    }
)
LICENSE_TYPES = frozenset(
    {NotificationType.LICENSE_UPDATED, NotificationType.LICENSE_DEPROVISIONED}
)
SNS_TYPES = frozenset(NotificationType) - EVENTBRIDGE_TYPES
HANDLED_DETAIL_TYPES = frozenset(AGREEMENT_DETAIL_TYPES + LICENSE_DETAIL_TYPES)
# A detail type is AWS's text, but it reaches a log line: bounded.
MAX_DETAIL_TYPE_CHARS = 128


class NotificationFormat(StrEnum):
    EVENTBRIDGE = "eventbridge"
    SNS = "sns"


class MalformedReason(StrEnum):
    """Why a body is poison (bounded; logged instead of the body)."""

    TOO_LARGE = "TooLarge"
    NOT_JSON = "NotJson"
    UNKNOWN_FORMAT = "UnknownFormat"
    UNKNOWN_EVENT_TYPE = "UnknownEventType"
    MISSING_FIELD = "MissingField"
    INVALID_FIELD = "InvalidField"
    INVALID_TIME = "InvalidTime"


class MalformedNotificationError(ValueError):
    """The body is not a lifecycle notification this function understands: it must fail
    (and after the queue's maxReceiveCount land in the dead-letter queue), never be guessed."""

    def __init__(self, reason: MalformedReason, field: str | None = None) -> None:
        super().__init__(f"{reason}: {field}" if field else str(reason))
        self.reason = reason
        self.field = field


class UnhandledDetailTypeError(Exception):
    """A Marketplace EventBridge event of a detail type this function does not handle (an
    advisory, an agreement-ending notice, the buyer's variant): to be acknowledged, not
    failed, since retrying it cannot help (docs/lifecycle.md lists both sets)."""

    def __init__(self, detail_type: str, message_id: str | None) -> None:
        super().__init__(detail_type)
        self.detail_type = detail_type
        self.message_id = message_id


class LifecycleNotification(NamedTuple):
    """One lifecycle notification, whatever its format; absent facts are None."""

    event_type: NotificationType
    occurred_at: datetime
    format: NotificationFormat
    message_id: str
    product_code: str | None = None
    customer_aws_account_id: str | None = None
    license_arn: str | None = None
    customer_identifier: str | None = None
    agreement_id: str | None = None
    agreement_status: str | None = None
    offer_id: str | None = None
    free_trial: bool | None = None
    # Purchase Agreement Created of a renewal (intent RENEW) or replacement: the agreement
    # the new one succeeds.
    previous_agreement_id: str | None = None
    # EventBridge only: "Manufacturer" or "Proposer" (the same change may come in both).
    role: str | None = None


_PRODUCT_CODE = re.compile(r"[-a-zA-Z0-9/=:_.@]{1,255}")
_ACCOUNT = re.compile(r"\d{12}")
# Identifiers that become key or index values: printable, no whitespace, bounded.
_IDENTIFIER = re.compile(r"[!-~]{1,1024}")
_MESSAGE_ID = re.compile(r"[!-~]{1,256}")


def parse_notification(body: str) -> LifecycleNotification:
    """Parse one queue message body; raise MalformedNotificationError if it is not one."""
    if len(body) > MAX_BODY_CHARS:
        raise MalformedNotificationError(MalformedReason.TOO_LARGE)
    try:
        message = json.loads(body)
    except ValueError:
        raise MalformedNotificationError(MalformedReason.NOT_JSON) from None
    if not isinstance(message, dict):
        raise MalformedNotificationError(MalformedReason.UNKNOWN_FORMAT)
    if message.get("source") == MARKETPLACE_EVENT_SOURCE and "detail-type" in message:
        return _from_event(message)
    if message.get("Type") == SNS_NOTIFICATION and "Message" in message:
        return _from_sns(message)
    raise MalformedNotificationError(MalformedReason.UNKNOWN_FORMAT)


def _from_event(event: dict[str, Any]) -> LifecycleNotification:
    detail_type = event.get("detail-type")
    if not isinstance(detail_type, str) or not detail_type.strip():
        raise MalformedNotificationError(MalformedReason.INVALID_FIELD, "detail-type")
    if detail_type not in HANDLED_DETAIL_TYPES:
        message_id = event.get("id")
        raise UnhandledDetailTypeError(
            detail_type[:MAX_DETAIL_TYPE_CHARS],
            message_id[:256] if isinstance(message_id, str) else None,
        )
    base, _, role = detail_type.rpartition(" - ")
    event_type = NotificationType(base)
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise MalformedNotificationError(MalformedReason.MISSING_FIELD, "detail")
    license_event = event_type in LICENSE_TYPES
    return LifecycleNotification(
        event_type=event_type,
        occurred_at=_time(event.get("time"), "time"),
        format=NotificationFormat.EVENTBRIDGE,
        message_id=_text(event, "id", _MESSAGE_ID, required=True) or "",
        # Agreement events carry neither product code nor license (AWS's examples and
        # captured events agree); license events carry both.
        product_code=_text(_object(detail, "product"), "code", _PRODUCT_CODE, license_event),
        customer_aws_account_id=_text(_object(detail, "acceptor"), "accountId", _ACCOUNT),
        license_arn=_license_arn(
            _text(_object(detail, "license"), "arn", _IDENTIFIER, license_event)
        ),
        agreement_id=_text(_object(detail, "agreement"), "id", _IDENTIFIER, required=True),
        agreement_status=_text(_object(detail, "agreement"), "status", _IDENTIFIER),
        offer_id=_text(_object(detail, "offer"), "id", _IDENTIFIER),
        previous_agreement_id=_previous_agreement(detail)
        if event_type is NotificationType.AGREEMENT_CREATED
        else None,
        role=role,
    )


def _from_sns(envelope: dict[str, Any]) -> LifecycleNotification:
    raw = envelope.get("Message")
    if not isinstance(raw, str):
        raise MalformedNotificationError(MalformedReason.INVALID_FIELD, "Message")
    try:
        message = json.loads(raw)
    except ValueError:
        raise MalformedNotificationError(MalformedReason.NOT_JSON, "Message") from None
    if not isinstance(message, dict):
        raise MalformedNotificationError(MalformedReason.UNKNOWN_FORMAT, "Message")
    try:
        event_type = NotificationType(str(message.get("action")))
    except ValueError:
        raise MalformedNotificationError(MalformedReason.UNKNOWN_EVENT_TYPE) from None
    if event_type not in SNS_TYPES:
        raise MalformedNotificationError(MalformedReason.UNKNOWN_EVENT_TYPE)
    return LifecycleNotification(
        event_type=event_type,
        # The message itself has no time: SNS's publish time is the change's time (and stays
        # the same on every redelivery of the message).
        occurred_at=_time(envelope.get("Timestamp"), "Timestamp"),
        format=NotificationFormat.SNS,
        message_id=_text(envelope, "MessageId", _MESSAGE_ID, required=True) or "",
        product_code=_text(message, "product-code", _PRODUCT_CODE, required=True),
        customer_identifier=_text(message, "customer-identifier", _IDENTIFIER, required=True),
        offer_id=_text(message, "offer-identifier", _IDENTIFIER),
        free_trial=_flag(message, "isFreeTrialTermPresent"),
    )


def _previous_agreement(detail: dict[str, Any]) -> str | None:
    # On the agreement object beside its intent; the stored copy of AWS's renewal example did
    # not show its position in full, so the detail's top level is read too (docs/decisions.md).
    return _text(_object(detail, "agreement"), "previousAgreementId", _IDENTIFIER) or _text(
        detail, "previousAgreementId", _IDENTIFIER
    )


def _object(container: dict[str, Any], name: str) -> dict[str, Any]:
    value = container.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedNotificationError(MalformedReason.INVALID_FIELD, name)
    return value


def _text(
    container: dict[str, Any], name: str, pattern: re.Pattern[str], required: bool = False
) -> str | None:
    value = container.get(name)
    if isinstance(value, str):
        # AWS's own SNS example pads the customer identifier with a space.
        value = value.strip()
    if value is None or value == "":
        if required:
            raise MalformedNotificationError(MalformedReason.MISSING_FIELD, name)
        return None
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise MalformedNotificationError(MalformedReason.INVALID_FIELD, name)
    return value


def _license_arn(value: str | None) -> str | None:
    # AWS's License event example prints the ARN without its "arn:" prefix; the captured
    # events and ResolveCustomer carry it. Normalise so both name the same customer key.
    if value is not None and value.startswith("aws:"):
        value = "arn:" + value
    if value is not None:
        try:
            parse_license_arn(value)
        except InvalidLicenseArnError:
            raise MalformedNotificationError(MalformedReason.INVALID_FIELD, "arn") from None
    return value


def _flag(container: dict[str, Any], name: str) -> bool | None:
    # Documented as a string ("true"/"false"), not a JSON boolean; accept both.
    value = container.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    raise MalformedNotificationError(MalformedReason.INVALID_FIELD, name)


def _time(value: object, name: str) -> datetime:
    if not isinstance(value, str) or not value:
        raise MalformedNotificationError(MalformedReason.MISSING_FIELD, name)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise MalformedNotificationError(MalformedReason.INVALID_TIME, name) from None
    if parsed.tzinfo is None:
        raise MalformedNotificationError(MalformedReason.INVALID_TIME, name)
    return parsed.astimezone(UTC)
