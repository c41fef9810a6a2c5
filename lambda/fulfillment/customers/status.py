"""A customer's subscription status and the rule that merges lifecycle facts into a customer.

Shared by the two writers of lifecycle facts: the lifecycle processor, which records each
notification, and registration, which folds the item an early SNS notification wrote under the
legacy key into the customer keyed by its license (docs/lifecycle.md). The rule: a status
change is recorded over the stored one only when it is newer (time, then lifecycle stage), and
entitlements only when fetched later; nothing moves backwards. Here once, as values and as the
DynamoDB conditions that enforce it. No I/O: items are DynamoDB attribute maps.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple

from fulfillment.contract import EXPIRES_AT, HISTORY_PREFIX, PK, SK


class CustomerStatus(StrEnum):
    PENDING = "pending"
    SUBSCRIBED = "subscribed"
    SUBSCRIBE_FAILED = "subscribe-failed"
    UNSUBSCRIBE_PENDING = "unsubscribe-pending"
    UNSUBSCRIBED = "unsubscribed"
    DEPROVISIONED = "deprovisioned"


# Precedence of two changes with the same event time (EventBridge times have one-second
# resolution): the later stage of the lifecycle wins, the same status is a duplicate.
STATUS_RANK: dict[CustomerStatus, int] = {
    CustomerStatus.PENDING: 1,
    CustomerStatus.SUBSCRIBED: 2,
    CustomerStatus.SUBSCRIBE_FAILED: 3,
    CustomerStatus.UNSUBSCRIBE_PENDING: 4,
    CustomerStatus.UNSUBSCRIBED: 5,
    CustomerStatus.DEPROVISIONED: 6,
}

# The ordering rule as conditions on the item written (placeholders :at and :rank of the
# change, :fetched of the entitlements): no stored change, an older one, or one of the same
# time and a lower rank (a same-time, same-status change is a duplicate and writes nothing).
NEWER_CONDITION = (
    "attribute_not_exists(status_changed_at) OR status_changed_at < :at "
    "OR (status_changed_at = :at AND status_rank < :rank)"
)
NEWER_ENTITLEMENTS_CONDITION = (
    "attribute_not_exists(entitlements_updated_at) OR entitlements_updated_at < :fetched"
)
# An agreement's terms: a later reading only (placeholder :checked).
NEWER_TERMS_CONDITION = (
    "attribute_not_exists(agreement_terms_checked_at) OR agreement_terms_checked_at < :checked"
)

# When the agreement's terms (free_trial) were last read (GetAgreementTerms); a later reading
# wins. Legacy SNS notifications set free_trial with their status instead.
TERMS_CHECKED_AT = "agreement_terms_checked_at"
# What a status change sets beside `status` (the notification's offer and trial go with it),
# and what an entitlement fetch sets. Together with them: the item's lifecycle attributes.
STATUS_ATTRIBUTES = ("status", "status_changed_at", "status_rank", "status_source")
STATUS_COMPANIONS = ("offer_id", "free_trial", TERMS_CHECKED_AT)
ENTITLEMENT_ATTRIBUTES = ("entitlements", "entitlements_updated_at")

HISTORY_TTL = timedelta(days=400)


class StatusChange(NamedTuple):
    status: CustomerStatus
    at: str
    source: str

    @property
    def rank(self) -> int:
        return STATUS_RANK[self.status]

    def supersedes(self, other: StatusChange | None) -> bool:
        """True when this change is to be recorded over ``other`` (the ordering rule)."""
        if other is None:
            return True
        return (self.at, self.rank) > (other.at, other.rank)


def stored_change(item: Mapping[str, Any]) -> StatusChange | None:
    """The status change recorded on a stored item, if it has one."""
    if "status" not in item or "status_changed_at" not in item:
        return None
    return StatusChange(
        status=CustomerStatus(item["status"]["S"]),
        at=item["status_changed_at"]["S"],
        source=item.get("status_source", {}).get("S", ""),
    )


def entitlements_newer(item: Mapping[str, Any], than: Mapping[str, Any]) -> bool:
    """True when ``item``'s entitlements are to be recorded over those of ``than``."""
    fetched = item.get("entitlements_updated_at", {}).get("S")
    stored = than.get("entitlements_updated_at", {}).get("S")
    return fetched is not None and (stored is None or stored < fetched)


def history_item(customer_key: str, change: StatusChange) -> dict[str, Any]:
    """The status-history item of an applied change, written in the change's transaction."""
    return {
        PK: {"S": customer_key},
        SK: {"S": f"{HISTORY_PREFIX}{change.at}#{change.status}"},
        "entity": {"S": "status_change"},
        "status": {"S": change.status},
        "at": {"S": change.at},
        "source": {"S": change.source},
        EXPIRES_AT: {"N": str(int((datetime.fromisoformat(change.at) + HISTORY_TTL).timestamp()))},
    }
