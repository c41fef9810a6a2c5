"""boto3 ``create_table`` arguments for the tables the contract declares.

The schemas themselves (keys, indexes, TTL, stream) are ``fulfillment.contract``'s; the CDK
constructs (infra/tables.py) and the local stack (moto) both build from them.
"""

from __future__ import annotations

from typing import Any

# Re-exported for local/dynamodb.py and tests/unit/test_schema_contract.py, which import them
# from here; new code imports them from fulfillment.contract.
from fulfillment.contract import CONTACTS, CUSTOMERS, IDEMPOTENCY, TableSchema

__all__ = ["CONTACTS", "CUSTOMERS", "IDEMPOTENCY", "TableSchema", "create_table_request"]


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
