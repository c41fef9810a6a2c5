"""Adapter (DynamoDB): customers and sign-up sessions; contact details in a table of their own.

The customers table has two item types. A customer item (sk CUSTOMER) is shared with the
lifecycle processor, so registration only ever SETs the attributes it owns, with UpdateItem
(and moves lifecycle facts only by the lifecycle's own rule, when it folds an early
notification's item into the customer: `settle_customer`); a session item (sk
SESSION) is ours alone and expires through the table's TTL attribute. The
buyer's contact details go to the contacts table (pk = the customer's key), which only the
sign-up function can reach: the customers table's stream, exports and readers never see them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from fulfillment.contract import CUSTOMER_SK, EXPIRES_AT, PK, SESSION_PREFIX, SESSION_SK, SK
from fulfillment.core.errors import StorageUnavailableError
from fulfillment.customers.errors import (
    RegistrationPendingError,
    SignupAlreadyCompletedError,
    SignupSessionUnavailableError,
)
from fulfillment.customers.models import (
    ContactDetails,
    CustomerRecord,
    ResolvedCustomer,
    SignupSession,
)
from fulfillment.customers.status import (
    ENTITLEMENT_ATTRIBUTES,
    NEWER_CONDITION,
    NEWER_ENTITLEMENTS_CONDITION,
    STATUS_ATTRIBUTES,
    STATUS_COMPANIONS,
    entitlements_newer,
    history_item,
    stored_change,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


# Attributes registration owns on a customer item. Anything else on the item (subscription
# status, entitlements) belongs to another writer and is never touched here.
_OPTIONAL_ATTRIBUTES = {
    "license_arn": "license_arn",
    "customer_identifier": "customer_identifier",
    "agreement_id": "agreement_id",
}


# A live registration: a registration id already applied is skipped (it counts once).
_OTHER_REGISTRATION = (
    "attribute_not_exists(last_registration_id) OR last_registration_id <> :registration"
)
# A replay: only a registration newer than the last one applies (the timestamps are ISO 8601
# in UTC, all in one format, so they order as strings). The same id has the same time.
_NEWER_REGISTRATION = "attribute_not_exists(last_registered_at) OR last_registered_at < :now"

# The session and customer updates' indexes in complete_signup's TransactItems (and
# CancellationReasons); the session is first in a new session's TransactItems too.
_SESSION_ITEM = 0
_CUSTOMER_ITEM = 2


def _timestamp(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds")


class DynamoDBCustomerStore:
    def __init__(
        self, client: DynamoDBClient, table_name: str, *, contacts_table_name: str | None = None
    ) -> None:
        """``contacts_table_name``: only the sign-up function has (and passes) one."""
        self._client = client
        self._table = table_name
        self._contacts_table = contacts_table_name

    def record_registration(
        self, customer: ResolvedCustomer, at: datetime, registration_id: str
    ) -> bool:
        # Conditional on the registration id even here: when botocore retries an UpdateItem
        # whose first attempt did reach DynamoDB (a read timeout), the retry must not count
        # the registration twice (seen under load: registration_count 2).
        try:
            answer = self._update_customer(customer, at, registration_id)
        except _AlreadyWrittenError as written:
            # Our own earlier attempt applied it: new if that made the count 1.
            count = str(written.item.get("registration_count", {}).get("N", "0"))
            return count == "1"
        # UPDATED_OLD holds registration_count only if an earlier registration set it; an item
        # that only the lifecycle processor wrote still counts as a new customer.
        return "registration_count" not in answer.get("Attributes", {})

    def replay_registration(
        self, customer: ResolvedCustomer, at: datetime, registration_id: str
    ) -> bool:
        """The same update for a replay, applied only when it is newer than the customer's
        last registration: a replay comes late (SQS retries, a dead-letter redrive) and in
        any order, so one already applied (its attempt reached DynamoDB after all, or SQS
        delivered the message twice, even after a newer registration) or one older than the
        last registration is skipped whole. ``registration_count`` counts a registration id
        at most once, and no attribute moves backwards (agreement, last registration)."""
        try:
            self._update_customer(customer, at, registration_id, condition=_NEWER_REGISTRATION)
        except _AlreadyWrittenError:
            return False
        return True

    def restore_session(
        self,
        session_id: str,
        customer_key: str,
        product_code: str,
        at: datetime,
        expires_at: int,
        csrf_token: str,
    ) -> bool:
        """The session unless it exists (then an earlier attempt or delivery stored it)."""
        item = _session(session_id, customer_key, product_code, at, expires_at, csrf_token)
        try:
            with _storage_errors():
                self._client.put_item(TableName=self._table, Item=item, ConditionExpression=_ABSENT)
        except _AlreadyWrittenError:
            return False
        return True

    def open_customer_session(
        self,
        customer: ResolvedCustomer,
        session_id: str,
        at: datetime,
        expires_at: int,
        csrf_token: str,
    ) -> ResolvedCustomer:
        """Store a new registration's session, with what earlier writes left under older keys
        settled first (``settle_customer``); return the customer with the key it is stored
        under, which the session names.

        For a customer with a license, the session's write also checks, in the same call,
        that nothing is stored under the license's ARN (the key before license ids keyed
        customers): the usual answer costs no extra call, and only a customer found there is
        settled with reads before its session is written."""
        arn_key = customer.arn_key
        session = _session(
            session_id, customer.customer_key, customer.product_code, at, expires_at, csrf_token
        )
        if arn_key is None or not self._session_unless_stored(session, arn_key):
            customer = self._settle_arn_item(customer)
            self.restore_session(
                session_id,
                customer.customer_key,
                customer.product_code,
                at,
                expires_at,
                csrf_token,
            )
        self._fold_legacy_item(customer)
        return customer

    def _session_unless_stored(self, session: dict[str, Any], arn_key: str) -> bool:
        """Put ``session`` unless an item is stored under ``arn_key`` (False: nothing
        written), in one call."""
        items: list[Any] = [
            {"Put": {"TableName": self._table, "Item": session, "ConditionExpression": _ABSENT}},
            {
                "ConditionCheck": {
                    "TableName": self._table,
                    "Key": _key(arn_key),
                    "ConditionExpression": _ABSENT,
                }
            },
        ]
        try:
            with _storage_errors():
                self._client.transact_write_items(TransactItems=items)
        except _TransactionConflictError as cancelled:
            codes = dict(enumerate(cancelled.codes))
            if codes.get(_ARN_CHECK) == _CHECK_FAILED:
                return False
            if codes.get(_SESSION_ITEM) != _CHECK_FAILED:
                # Another transaction held one of the items: like an unavailable table.
                raise StorageUnavailableError("TransactionConflict") from None
            # Only the session exists: an earlier attempt of this very call stored it.
        return True

    def settle_customer(self, customer: ResolvedCustomer) -> ResolvedCustomer:
        """Join to the customer what earlier writes left under older keys, before
        registration's own write; return the customer with the key it is stored under.

        - An item **registered** under the license ARN (``customer.arn_key``: customers were
          keyed so before license ids keyed them) stays the customer, with its sessions,
          contact details and ``customer_ref``: the answer comes back with ``stored_key``.
        - An unregistered item under that ARN, or under the legacy key (an early SNS
          notification's: ``customer.early_legacy_key``), is folded into the customer's own:
          its lifecycle facts by the rule lifecycle records them by (customers/status.py),
          then it is deleted, in one transaction conditional on both items as read, so a
          notification written meanwhile is folded on the next attempt, never lost.

        One consistent read per older key when there is nothing to fold (docs/lifecycle.md).
        """
        customer = self._settle_arn_item(customer)
        self._fold_legacy_item(customer)
        return customer

    def _settle_arn_item(self, customer: ResolvedCustomer) -> ResolvedCustomer:
        arn_key = customer.arn_key
        if arn_key is not None and self._fold(customer, arn_key):
            return customer._replace(stored_key=arn_key)
        return customer

    def _fold_legacy_item(self, customer: ResolvedCustomer) -> None:
        if customer.early_legacy_key is not None:
            self._fold(customer, customer.early_legacy_key)

    def _fold(self, customer: ResolvedCustomer, older_key: str) -> bool:
        """Fold the item under ``older_key`` into the customer's unless it was registered;
        True when it was (it stays: sessions and contact details name its key)."""
        for _ in range(_FOLD_ATTEMPTS):
            early = self._customer_item(older_key)
            if early is None:
                return False
            if "registration_count" in early:
                return True
            current = self._customer_item(customer.customer_key, _FOLD_READ) or {}
            if self._fold_once(customer, older_key, early, current):
                return False
        # Notifications keep landing in between: fail like an unavailable table (parked).
        raise StorageUnavailableError("FoldConflict")

    def _customer_item(
        self, customer_key: str, attributes: tuple[str, ...] = ()
    ) -> dict[str, Any] | None:
        projection: dict[str, Any] = {}
        if attributes:
            names = {f"#a{number}": name for number, name in enumerate(attributes)}
            projection = {
                "ProjectionExpression": ", ".join(names),
                "ExpressionAttributeNames": names,
            }
        with _storage_errors():
            item = self._client.get_item(
                TableName=self._table,
                Key=_key(customer_key),
                ConsistentRead=True,
                **projection,
            ).get("Item")
        return None if item is None else dict(item)

    def _fold_once(
        self,
        customer: ResolvedCustomer,
        older_key: str,
        early: dict[str, Any],
        current: dict[str, Any],
    ) -> bool:
        """One attempt; False when either item changed since it was read."""
        key, fold = customer.customer_key, _Fold()
        # Who the customer is: filled in where absent, as lifecycle does, so both indexes
        # find the item even before registration's own write.
        fold.set("entity", {"S": "customer"}, only_if_absent=True)
        for attribute in ("product_code", "license_arn", "customer_identifier"):
            if value := getattr(customer, attribute):
                fold.set(attribute, {"S": value}, only_if_absent=True)
        change = stored_change(early)
        history: list[Any] = []
        if change is not None and change.supersedes(stored_change(current)):
            rank = early["status_rank"]
            fold.condition(NEWER_CONDITION, {":at": {"S": change.at}, ":rank": rank})
            for attribute in STATUS_ATTRIBUTES + STATUS_COMPANIONS:
                fold.set(attribute, early.get(attribute))
            # The change is applied to this customer now: its history says so too.
            history.append({"Put": {"TableName": self._table, "Item": history_item(key, change)}})
        else:
            for attribute in STATUS_COMPANIONS:
                fold.set(attribute, early.get(attribute), only_if_absent=True)
        if entitlements_newer(early, current):
            fetched = early["entitlements_updated_at"]
            fold.condition(NEWER_ENTITLEMENTS_CONDITION, {":fetched": fetched})
            for attribute in ENTITLEMENT_ATTRIBUTES:
                fold.set(attribute, early.get(attribute))
        items: list[Any] = [
            {"Update": {"TableName": self._table, "Key": _key(key), **fold.arguments()}},
            {"Delete": {"TableName": self._table, "Key": _key(older_key), **_unchanged(early)}},
            *history,
        ]
        try:
            with _storage_errors():
                self._client.transact_write_items(TransactItems=items)
        except _TransactionConflictError:
            return False
        return True

    def _update_customer(
        self,
        customer: ResolvedCustomer,
        at: datetime,
        registration_id: str,
        *,
        condition: str = _OTHER_REGISTRATION,
    ) -> dict[str, Any]:
        values: dict[str, Any] = {
            ":entity": {"S": "customer"},
            ":registration": {"S": registration_id},
            ":product": {"S": customer.product_code},
            ":account": {"S": customer.customer_aws_account_id},
            ":now": {"S": _timestamp(at)},
            ":one": {"N": "1"},
        }
        assignments = [
            "entity = :entity",
            "product_code = :product",
            "customer_aws_account_id = :account",
            "first_registered_at = if_not_exists(first_registered_at, :now)",
            "last_registered_at = :now",
            "last_registration_id = :registration",
        ]
        # Empty strings are never written: GSI key attributes must be absent or non-empty.
        for field, attribute in _OPTIONAL_ATTRIBUTES.items():
            value = getattr(customer, field)
            if value:
                assignments.append(f"{attribute} = :{field}")
                values[f":{field}"] = {"S": value}
        with _storage_errors():
            answer = self._client.update_item(
                TableName=self._table,
                Key={PK: {"S": customer.customer_key}, SK: {"S": CUSTOMER_SK}},
                UpdateExpression="SET " + ", ".join(assignments) + " ADD registration_count :one",
                ExpressionAttributeValues=values,
                ReturnValues="UPDATED_OLD",
                ConditionExpression=condition,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        return dict(answer)

    def create_session(
        self,
        session_id: str,
        customer_key: str,
        product_code: str,
        at: datetime,
        expires_at: int,
        csrf_token: str,
    ) -> None:
        # 192 random bits never collide: an existing item is ours, written by an earlier
        # attempt of this very call that botocore retried after a timeout.
        self.restore_session(session_id, customer_key, product_code, at, expires_at, csrf_token)

    def _session_item(self, session_id: str) -> dict[str, Any] | None:
        """The session's item (a consistent read), if stored."""
        with _storage_errors():
            item: dict[str, Any] | None = self._client.get_item(
                TableName=self._table,
                Key={PK: {"S": SESSION_PREFIX + session_id}, SK: {"S": SESSION_SK}},
                ConsistentRead=True,
            ).get("Item")
        return item

    def get_session(self, session_id: str) -> SignupSession | None:
        item = self._session_item(session_id)
        if item is None:
            return None
        return SignupSession(
            session_id=session_id,
            customer_key=item["customer_pk"]["S"],
            product_code=item["product_code"]["S"],
            expires_at=int(item[EXPIRES_AT]["N"]),
            csrf_token=item.get("csrf_token", {}).get("S", ""),
            completed="completed_at" in item,
        )

    def get_customer(self, customer_key: str) -> CustomerRecord | None:
        item = self._customer_item(customer_key)
        if item is None:
            return None

        def text(name: str) -> str | None:
            value = item.get(name, {}).get("S")
            return str(value) if value else None

        return CustomerRecord(
            customer_key=customer_key,
            product_code=text("product_code") or "",
            customer_aws_account_id=text("customer_aws_account_id") or "",
            license_arn=text("license_arn"),
            customer_identifier=text("customer_identifier"),
            agreement_id=text("agreement_id"),
            status=text("status"),
            signed_up_at=text("signed_up_at"),
            offer_id=text("offer_id"),
            free_trial=item["free_trial"].get("BOOL") if "free_trial" in item else None,
        )

    def complete_signup(
        self, session: SignupSession, contact: ContactDetails, at: datetime
    ) -> None:
        if self._contacts_table is None:
            raise RuntimeError("this store was built without the contacts table")
        now = _timestamp(at)
        contact_item: dict[str, Any] = {
            PK: {"S": session.customer_key},
            "company": {"S": contact.company},
            "contact_name": {"S": contact.contact_name},
            "email": {"S": contact.email},
            "registration_id": {"S": session.session_id},
            "updated_at": {"S": now},
        }
        if contact.phone:
            contact_item["phone"] = {"S": contact.phone}
        if contact.extra:
            contact_item["extra"] = {"M": {k: {"S": v} for k, v in contact.extra}}
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": {
                                PK: {"S": SESSION_PREFIX + session.session_id},
                                SK: {"S": SESSION_SK},
                            },
                            "UpdateExpression": "SET completed_at = :now",
                            # Once, and only while the session lives (TTL deletion lags).
                            "ConditionExpression": (
                                "attribute_exists(pk) AND attribute_not_exists(completed_at) "
                                "AND expires_at > :epoch"
                            ),
                            "ExpressionAttributeValues": {
                                ":now": {"S": now},
                                ":epoch": {"N": str(int(at.timestamp()))},
                            },
                        }
                    },
                    # Personal data in a table of its own; one transaction spans both tables.
                    {"Put": {"TableName": self._contacts_table, "Item": contact_item}},
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": {PK: {"S": session.customer_key}, SK: {"S": CUSTOMER_SK}},
                            "UpdateExpression": (
                                "SET signed_up_at = :now, signup_registration_id = :registration"
                            ),
                            "ConditionExpression": "attribute_exists(pk)",
                            "ExpressionAttributeValues": {
                                ":now": {"S": now},
                                ":registration": {"S": session.session_id},
                            },
                        }
                    },
                ]
            )
        except ClientError as exc:
            # One reason per item, in TransactItems order: the session update is first.
            reasons = exc.response.get("CancellationReasons") or []
            session_reason = reasons[_SESSION_ITEM].get("Code") if reasons else None
            if session_reason == _CHECK_FAILED:
                stored = self._session_item(session.session_id) or {}
                if stored.get("completed_at", {}).get("S") == now:
                    # An earlier attempt of this very call was applied and its answer lost (a
                    # timeout botocore retried; DynamoDB honours the retry's idempotency
                    # token, a stand-in may not): the buyer's sign-up is what completed it.
                    return
                if session.completed or session.expires_at > int(at.timestamp()):
                    raise SignupAlreadyCompletedError("sign-up already submitted") from None
                raise SignupSessionUnavailableError("sign-up session expired") from None
            if len(reasons) > _CUSTOMER_ITEM and (
                reasons[_CUSTOMER_ITEM].get("Code") == _CHECK_FAILED
            ):
                # A live session whose customer write was parked: not recorded yet.
                raise RegistrationPendingError("registration's customer not recorded yet") from None
            raise StorageUnavailableError(_error_code(exc)) from exc
        except BotoCoreError as exc:
            raise StorageUnavailableError(_error_code(exc)) from exc


_ABSENT = "attribute_not_exists(pk)"
# A transaction item's cancellation reason when its condition failed.
_CHECK_FAILED = "ConditionalCheckFailed"
# The check of the key before license ids, in a new session's TransactItems.
_ARN_CHECK = 1
# A fold retries when a notification lands between its read and its write; after this many
# attempts in a row it gives up, and the registration is parked and replayed later.
_FOLD_ATTEMPTS = 3
# What versions a customer item's lifecycle facts: every lifecycle write moves one of them.
_FOLD_VERSION = ("status_changed_at", "status_rank", "entitlements_updated_at")
# What the rule compares on the customer's own item.
_FOLD_READ = ("status", *_FOLD_VERSION)


def _session(
    session_id: str,
    customer_key: str,
    product_code: str,
    at: datetime,
    expires_at: int,
    csrf_token: str,
) -> dict[str, Any]:
    return {
        PK: {"S": SESSION_PREFIX + session_id},
        SK: {"S": SESSION_SK},
        "entity": {"S": "session"},
        "customer_pk": {"S": customer_key},
        "product_code": {"S": product_code},
        "created_at": {"S": _timestamp(at)},
        EXPIRES_AT: {"N": str(expires_at)},
        "csrf_token": {"S": csrf_token},
    }


def _key(customer_key: str) -> dict[str, Any]:
    return {PK: {"S": customer_key}, SK: {"S": CUSTOMER_SK}}


def _unchanged(item: dict[str, Any]) -> dict[str, Any]:
    """A condition that holds only while the item is as read (and still unregistered)."""
    names = {f"#v{number}": name for number, name in enumerate(_FOLD_VERSION)}
    values: dict[str, Any] = {}
    clauses = ["attribute_exists(pk)", "attribute_not_exists(registration_count)"]
    for placeholder, name in names.items():
        if name in item:
            values[f":{placeholder[1:]}"] = item[name]
            clauses.append(f"{placeholder} = :{placeholder[1:]}")
        else:
            clauses.append(f"attribute_not_exists({placeholder})")
    condition: dict[str, Any] = {
        "ConditionExpression": " AND ".join(clauses),
        "ExpressionAttributeNames": names,
    }
    if values:
        condition["ExpressionAttributeValues"] = values
    return condition


class _Fold:
    """The customer item's UpdateItem of a fold: SET clauses and the rule's conditions."""

    def __init__(self) -> None:
        self._clauses: list[str] = []
        self._conditions: list[str] = []
        self._names: dict[str, str] = {}
        self._values: dict[str, Any] = {}

    def set(self, attribute: str, value: Any, *, only_if_absent: bool = False) -> None:
        if value is None:
            return
        # Every name through a placeholder: `status` is a DynamoDB reserved word.
        name, placeholder = f"#n{len(self._names)}", f":f{len(self._names)}"
        self._names[name], self._values[placeholder] = attribute, value
        target = f"if_not_exists({name}, {placeholder})" if only_if_absent else placeholder
        self._clauses.append(f"{name} = {target}")

    def condition(self, expression: str, values: dict[str, Any]) -> None:
        self._conditions.append(f"({expression})")
        self._values.update(values)

    def arguments(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "UpdateExpression": "SET " + ", ".join(self._clauses),
            "ExpressionAttributeNames": self._names,
            "ExpressionAttributeValues": self._values,
        }
        if self._conditions:
            arguments["ConditionExpression"] = " AND ".join(self._conditions)
        return arguments


class _TransactionConflictError(Exception):
    """A transaction was cancelled because an item changed since it was read (or another
    transaction held it): read again and retry. ``codes``: each item's cancellation reason."""

    def __init__(self, error_code: str, codes: list[str | None]) -> None:
        super().__init__(error_code)
        self.codes = codes


class _AlreadyWrittenError(Exception):
    """A conditional write found its item already written (a replay, or botocore's retry of an
    attempt that did reach DynamoDB); ``item`` is the item as found, when it was returned."""

    def __init__(self, item: dict[str, Any]) -> None:
        super().__init__("already written")
        self.item = item


@contextmanager
def _storage_errors() -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        if _error_code(exc) == "ConditionalCheckFailedException":
            found: Any = exc.response.get("Item") or {}
            raise _AlreadyWrittenError(dict(found)) from exc
        codes = [reason.get("Code") for reason in exc.response.get("CancellationReasons") or []]
        if set(codes) & {_CHECK_FAILED, "TransactionConflict"}:
            raise _TransactionConflictError(_error_code(exc), codes) from exc
        raise StorageUnavailableError(_error_code(exc)) from exc
    except BotoCoreError as exc:
        raise StorageUnavailableError(_error_code(exc)) from exc


def _error_code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__
