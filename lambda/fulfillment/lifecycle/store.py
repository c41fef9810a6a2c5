"""Adapter: the lifecycle processor's reads and writes in the customers table (DynamoDB).

The customer item (sk CUSTOMER) is shared with registration: every write here is an
UpdateItem that SETs only lifecycle attributes, and fills identity attributes only where they
are absent (`if_not_exists`), so registration and lifecycle can write in either order.
Two more item types belong to the lifecycle alone:

- a status-history item per recorded change, `pk` = the customer's key, `sk` =
  `STATUS#<time>#<status>`, written in the same transaction as the change (so only applied
  changes are in the history), removed by the table's TTL after HISTORY_TTL (customers/status.py);
- a parked agreement, `pk` = `AGREEMENT#<agreement id>`, `sk` = AGREEMENT: the newest status
  and the latest reading of the terms of an agreement no customer had yet, for its license
  event to merge; TTL'd too. It carries none of the indexed attribute names, so no customer
  lookup ever finds it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from fulfillment.contract import (
    AGREEMENT_PREFIX,
    AGREEMENT_SK,
    BY_AGREEMENT,
    BY_CUSTOMER_IDENTIFIER,
    BY_LICENSE,
    CUSTOMER_SK,
    EXPIRES_AT,
    PK,
    SK,
)
from fulfillment.core.errors import StorageUnavailableError
from fulfillment.customers.status import (
    NEWER_CONDITION,
    NEWER_ENTITLEMENTS_CONDITION,
    NEWER_TERMS_CONDITION,
    TERMS_CHECKED_AT,
    StatusChange,
    history_item,
    stored_change,
)
from fulfillment.lifecycle.subscriptions import (
    AgreementTerms,
    Entitlement,
    Identity,
    ParkedAgreement,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# Index names: infra/schema.py (a test checks they exist there).

# The agreement a customer is on moves forward only: `agreement_changed_at` is the time of
# the notification that named it (a renewal, or a status change that carried it).
AGREEMENT_NEWER = "(attribute_not_exists(agreement_changed_at) OR agreement_changed_at <= :at)"
# A renewal moves a customer only from the agreement it succeeds, and only forward.
RENEWAL_CONDITION = (
    "agreement_id = :previous AND "
    "(attribute_not_exists(agreement_changed_at) OR agreement_changed_at < :at)"
)
# Terms are recorded on a customer on their agreement only, and only a later reading.
TERMS_CONDITION = f"agreement_id = :agreement AND ({NEWER_TERMS_CONDITION})"
_CONDITIONAL_CHECK_FAILED = "ConditionalCheckFailedException"


class DynamoDBLifecycleStore:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    # -- lookups ---------------------------------------------------------------------------

    def customer_keys_by_license(self, license_arn: str) -> list[str]:
        return self._query(BY_LICENSE, "license_arn", license_arn)

    def customer_keys_by_agreement(self, agreement_id: str) -> list[str]:
        return self._query(BY_AGREEMENT, "agreement_id", agreement_id)

    def customer_keys_by_identifier(self, product_code: str, customer_identifier: str) -> list[str]:
        # A legacy identifier names a customer of one product (the legacy key holds both).
        return self._query(
            BY_CUSTOMER_IDENTIFIER, "customer_identifier", customer_identifier, product_code
        )

    def _query(
        self, index: str, attribute: str, value: str, product_code: str | None = None
    ) -> list[str]:
        # Every page, empty ones included (a page stops at 1 MB, not at the last match).
        pages = self._client.get_paginator("query").paginate(
            TableName=self._table,
            IndexName=index,
            KeyConditionExpression="#a = :v",
            ExpressionAttributeNames={"#a": attribute},
            ExpressionAttributeValues={":v": {"S": value}},
            ProjectionExpression="pk, sk" if product_code is None else "pk, sk, product_code",
        )
        with _storage_errors():
            keys = {
                item[PK]["S"]
                for page in pages
                for item in page["Items"]
                if item[SK]["S"] == CUSTOMER_SK
                and (product_code is None or item.get("product_code", {}).get("S") == product_code)
            }
        return sorted(keys)

    def parked_agreement(self, agreement_id: str) -> ParkedAgreement | None:
        with _storage_errors():
            item = self._client.get_item(
                TableName=self._table,
                Key=_parked_key(agreement_id),
                ConsistentRead=True,
            ).get("Item")
        if item is None:
            return None
        terms = None
        if "free_trial" in item and TERMS_CHECKED_AT in item:
            terms = AgreementTerms(
                agreement_id, item["free_trial"]["BOOL"], item[TERMS_CHECKED_AT]["S"]
            )
        return ParkedAgreement(stored_change(item), terms)

    # -- writes ----------------------------------------------------------------------------

    def record_status(
        self,
        customer_key: str,
        identity: Identity,
        change: StatusChange,
        entitlements: Sequence[Entitlement] | None = None,
        fetched_at: str | None = None,
    ) -> bool:
        if identity.agreement_id and self._record_status(
            customer_key, identity, change, entitlements, fetched_at, with_agreement=True
        ):
            return True
        if identity.agreement_id:
            # Stale, or the customer is on an agreement named later than this notification
            # (a renewal moved it on): the status may still be news, the agreement (and its
            # offer) are not.
            identity = identity._replace(offer_id=None)
        return self._record_status(
            customer_key, identity, change, entitlements, fetched_at, with_agreement=False
        )

    def _record_status(
        self,
        customer_key: str,
        identity: Identity,
        change: StatusChange,
        entitlements: Sequence[Entitlement] | None,
        fetched_at: str | None,
        *,
        with_agreement: bool,
    ) -> bool:
        update = _Update()
        update.identity(identity, with_agreement=with_agreement)
        update.status(change)
        condition = NEWER_CONDITION
        if with_agreement:
            update.agreement_time()
            condition = f"({NEWER_CONDITION}) AND {AGREEMENT_NEWER}"
        if entitlements is not None and fetched_at is not None:
            update.entitlements(entitlements, fetched_at)
        history = history_item(customer_key, change)
        items: list[Any] = [
            {
                "Update": {
                    "TableName": self._table,
                    "Key": {PK: {"S": customer_key}, SK: {"S": CUSTOMER_SK}},
                    "ConditionExpression": condition,
                    **update.arguments(),
                }
            },
            {"Put": {"TableName": self._table, "Item": history}},
        ]
        try:
            self._client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons") or []
            if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                return False
            raise StorageUnavailableError(_error_code(exc)) from exc
        except BotoCoreError as exc:
            raise StorageUnavailableError(_error_code(exc)) from exc
        return True

    def park(
        self, agreement_id: str, identity: Identity, change: StatusChange, expires_at: int
    ) -> bool:
        update = _Update()
        update.set("entity", {"S": "agreement"})
        # Not customer_aws_account_id / agreement_id: those names are indexed, and a parked
        # agreement must never be found as a customer.
        if identity.customer_aws_account_id:
            update.set("acceptor_account_id", {"S": identity.customer_aws_account_id})
        if identity.offer_id:
            update.set("offer_id", {"S": identity.offer_id})
        update.status(change)
        update.set(EXPIRES_AT, {"N": str(expires_at)})
        return self._conditional_update(_parked_key(agreement_id), update, NEWER_CONDITION)

    def park_terms(self, terms: AgreementTerms, expires_at: int) -> bool:
        update = _Update()
        update.set("entity", {"S": "agreement"})
        update.terms(terms)
        update.set(EXPIRES_AT, {"N": str(expires_at)})
        return self._conditional_update(
            _parked_key(terms.agreement_id), update, NEWER_TERMS_CONDITION
        )

    def record_terms(self, customer_key: str, terms: AgreementTerms) -> bool:
        update = _Update()
        update.terms(terms)
        update.value(":agreement", {"S": terms.agreement_id})
        return self._conditional_update(
            {PK: {"S": customer_key}, SK: {"S": CUSTOMER_SK}}, update, TERMS_CONDITION
        )

    def record_entitlements(
        self,
        customer_key: str,
        identity: Identity,
        entitlements: Sequence[Entitlement],
        fetched_at: str,
    ) -> bool:
        update = _Update()
        update.identity(identity, with_agreement=False)
        update.entitlements(entitlements, fetched_at)
        return self._conditional_update(
            {PK: {"S": customer_key}, SK: {"S": CUSTOMER_SK}},
            update,
            NEWER_ENTITLEMENTS_CONDITION,
        )

    def move_agreement(
        self, customer_key: str, previous_agreement_id: str, identity: Identity, at: str
    ) -> bool:
        if not identity.agreement_id:
            return False
        update = _Update()
        update.set("agreement_id", {"S": identity.agreement_id})
        update.set("agreement_changed_at", {"S": at})
        if identity.offer_id:
            update.set("offer_id", {"S": identity.offer_id})
        # The previous agreement's terms are not the new one's (recorded when read).
        update.remove("free_trial", TERMS_CHECKED_AT)
        update.value(":previous", {"S": previous_agreement_id})
        update.value(":at", {"S": at})
        return self._conditional_update(
            {PK: {"S": customer_key}, SK: {"S": CUSTOMER_SK}}, update, RENEWAL_CONDITION
        )

    def _conditional_update(self, key: dict[str, Any], update: _Update, condition: str) -> bool:
        try:
            self._client.update_item(
                TableName=self._table, Key=key, ConditionExpression=condition, **update.arguments()
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == _CONDITIONAL_CHECK_FAILED:
                return False
            raise StorageUnavailableError(_error_code(exc)) from exc
        except BotoCoreError as exc:
            raise StorageUnavailableError(_error_code(exc)) from exc
        return True


class _Update:
    """An UpdateExpression built from SET clauses, with its value placeholders."""

    def __init__(self) -> None:
        self._clauses: list[str] = []
        self._removed: list[str] = []
        self._values: dict[str, Any] = {}
        self._names: dict[str, str] = {}

    def _name(self, attribute: str) -> str:
        name = f"#n{len(self._names)}"
        self._names[name] = attribute
        return name

    def set(self, attribute: str, value: Any, *, only_if_absent: bool = False) -> None:
        # Every name through a placeholder: `status` is a DynamoDB reserved word.
        name = self._name(attribute)
        placeholder = f":v{len(self._values)}"
        self._values[placeholder] = value
        if only_if_absent:
            self._clauses.append(f"{name} = if_not_exists({name}, {placeholder})")
        else:
            self._clauses.append(f"{name} = {placeholder}")

    def identity(self, identity: Identity, *, with_agreement: bool = True) -> None:
        self.set("entity", {"S": "customer"}, only_if_absent=True)
        # Who the customer is does not change for a key: fill in, never overwrite what
        # registration wrote. Empty strings are never written (GSI keys must not be).
        for attribute, value in (
            ("product_code", identity.product_code),
            ("customer_aws_account_id", identity.customer_aws_account_id),
            ("license_arn", identity.license_arn),
            ("customer_identifier", identity.customer_identifier),
        ):
            if value:
                self.set(attribute, {"S": value}, only_if_absent=True)
        if with_agreement and identity.agreement_id:
            # Under the ordering condition: the newest notification names the current
            # agreement (a renewal moves a license to a new one).
            self.set("agreement_id", {"S": identity.agreement_id})
        if identity.offer_id:
            self.set("offer_id", {"S": identity.offer_id})
        if identity.free_trial is not None:
            self.set("free_trial", {"BOOL": identity.free_trial})

    def remove(self, *attributes: str) -> None:
        self._removed += [self._name(attribute) for attribute in attributes]

    def terms(self, terms: AgreementTerms) -> None:
        self.set("free_trial", {"BOOL": terms.free_trial})
        self._values[":checked"] = {"S": terms.checked_at}
        self._clauses.append(f"{TERMS_CHECKED_AT} = :checked")

    def value(self, placeholder: str, value: Any) -> None:
        """A value only a condition uses."""
        self._values[placeholder] = value

    def agreement_time(self) -> None:
        # With the agreement id it dates (status() supplies :at).
        self._clauses.append("agreement_changed_at = :at")

    def status(self, change: StatusChange) -> None:
        self._values[":at"] = {"S": change.at}
        self._values[":rank"] = {"N": str(change.rank)}
        self._clauses += ["status_changed_at = :at", "status_rank = :rank"]
        self.set("status", {"S": change.status})
        self.set("status_source", {"S": change.source})

    def entitlements(self, entitlements: Sequence[Entitlement], fetched_at: str) -> None:
        self.set("entitlements", {"L": [{"M": _entitlement_item(e)} for e in entitlements]})
        self._values[":fetched"] = {"S": fetched_at}
        self._clauses.append("entitlements_updated_at = :fetched")

    def arguments(self) -> dict[str, Any]:
        expression = "SET " + ", ".join(self._clauses)
        if self._removed:
            expression += " REMOVE " + ", ".join(self._removed)
        return {
            "UpdateExpression": expression,
            "ExpressionAttributeNames": dict(self._names),
            "ExpressionAttributeValues": dict(self._values),
        }


def _parked_key(agreement_id: str) -> dict[str, Any]:
    return {PK: {"S": AGREEMENT_PREFIX + agreement_id}, SK: {"S": AGREEMENT_SK}}


def _entitlement_item(entitlement: Entitlement) -> dict[str, Any]:
    item: dict[str, Any] = {"dimension": {"S": entitlement.dimension}}
    value, kind = entitlement.value, entitlement.value_type
    if kind is not None and value is not None:
        item["type"] = {"S": kind}
        if isinstance(value, bool):
            item["value"] = {"BOOL": value}
        elif isinstance(value, int | float):
            item["value"] = {"N": repr(value)}
        else:
            item["value"] = {"S": str(value)} if value != "" else {"NULL": True}
    if entitlement.expiration:
        item["expiration"] = {"S": entitlement.expiration}
    return item


@contextmanager
def _storage_errors() -> Iterator[None]:
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise StorageUnavailableError(_error_code(exc)) from exc


def _error_code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__
