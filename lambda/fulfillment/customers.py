"""Adapter: customers and sign-up sessions in the customers table (DynamoDB).

One table, two item types. A customer item (sk CUSTOMER) is shared with the lifecycle
processor, so registration only ever SETs the attributes it owns, with UpdateItem; a session
item (sk SESSION) is ours alone and expires through the table's TTL attribute.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from fulfillment.errors import StorageUnavailableError
from fulfillment.models import ResolvedCustomer

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# Attribute names; the key and index attributes must match infra/schema.py (a test checks).
PK = "pk"
SK = "sk"
CUSTOMER_SK = "CUSTOMER"
SESSION_SK = "SESSION"
SESSION_PREFIX = "SESSION#"
EXPIRES_AT = "expires_at"

# Attributes registration owns on a customer item. Anything else on the item (subscription
# status, entitlements, contact details) belongs to another writer and is never touched here.
_OPTIONAL_ATTRIBUTES = {
    "license_arn": "license_arn",
    "customer_identifier": "customer_identifier",
    "agreement_id": "agreement_id",
}


def _timestamp(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds")


class DynamoDBCustomerStore:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def record_registration(self, customer: ResolvedCustomer, at: datetime) -> bool:
        values: dict[str, Any] = {
            ":entity": {"S": "customer"},
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
            )
        # UPDATED_OLD holds registration_count only if an earlier registration set it; an item
        # that only the lifecycle processor wrote still counts as a new customer.
        return "registration_count" not in answer.get("Attributes", {})

    def create_session(
        self, session_id: str, customer_key: str, product_code: str, at: datetime, expires_at: int
    ) -> None:
        with _storage_errors():
            self._client.put_item(
                TableName=self._table,
                Item={
                    PK: {"S": SESSION_PREFIX + session_id},
                    SK: {"S": SESSION_SK},
                    "entity": {"S": "session"},
                    "customer_pk": {"S": customer_key},
                    "product_code": {"S": product_code},
                    "created_at": {"S": _timestamp(at)},
                    EXPIRES_AT: {"N": str(expires_at)},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )


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
