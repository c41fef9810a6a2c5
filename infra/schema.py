"""Keys, indexes and TTL of the project's DynamoDB tables: the one source of truth.

Plain data, no CDK import, so that the CDK constructs and the local stack (which creates
the same tables in moto) both build from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Index:
    name: str
    partition_key: str
    sort_key: str | None = None


@dataclass(frozen=True, slots=True)
class TableSchema:
    partition_key: str
    sort_key: str | None
    # The TTL attribute, or None for items that never expire.
    ttl_attribute: str | None
    indexes: tuple[Index, ...] = ()
    # DynamoDB Streams view type ("NEW_AND_OLD_IMAGES", ...), or None for no stream.
    stream_view_type: str | None = None

    def key_attributes(self) -> list[str]:
        names = [self.partition_key, *([self.sort_key] if self.sort_key else [])]
        for index in self.indexes:
            names += [index.partition_key, *([index.sort_key] if index.sort_key else [])]
        return list(dict.fromkeys(names))


# Customers (sk CUSTOMER) and sign-up sessions (sk SESSION, removed by TTL). The indexes are
# sparse: an item appears in one only when it has that attribute, so lifecycle notifications
# find a customer by license, account, legacy identifier or agreement without a scan.
CUSTOMERS = TableSchema(
    partition_key="pk",
    sort_key="sk",
    ttl_attribute="expires_at",
    indexes=(
        Index("by_license", "license_arn"),
        Index("by_account", "customer_aws_account_id", "product_code"),
        Index("by_customer_identifier", "customer_identifier"),
        Index("by_agreement", "agreement_id"),
    ),
    # The registration events publisher derives its events from both images of each write.
    stream_view_type="NEW_AND_OLD_IMAGES",
)

# Powertools idempotency records: its default key and expiry attribute names.
IDEMPOTENCY = TableSchema(partition_key="id", sort_key=None, ttl_attribute="expiration")

# The buyer's contact details from the built-in sign-up page, one item per customer
# (pk = the customer's key): the only personal data, in a table of its own so that only the
# sign-up function can reach it. No stream, no indexes, nothing expires.
CONTACTS = TableSchema(partition_key="pk", sort_key=None, ttl_attribute=None)


def create_table_request(schema: TableSchema, table_name: str) -> dict[str, Any]:
    """boto3 ``create_table`` arguments for ``schema`` (on-demand billing, its stream)."""
    request: dict[str, Any] = {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": "S"} for name in schema.key_attributes()
        ],
        "KeySchema": _key_schema(schema.partition_key, schema.sort_key),
    }
    if schema.indexes:
        request["GlobalSecondaryIndexes"] = [
            {
                "IndexName": index.name,
                "KeySchema": _key_schema(index.partition_key, index.sort_key),
                "Projection": {"ProjectionType": "ALL"},
            }
            for index in schema.indexes
        ]
    if schema.stream_view_type:
        request["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": schema.stream_view_type,
        }
    return request


def _key_schema(partition_key: str, sort_key: str | None) -> list[dict[str, str]]:
    keys = [{"AttributeName": partition_key, "KeyType": "HASH"}]
    if sort_key:
        keys.append({"AttributeName": sort_key, "KeyType": "RANGE"})
    return keys
