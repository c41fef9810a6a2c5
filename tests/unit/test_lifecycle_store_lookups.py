"""The lifecycle store's index lookups against botocore's Stubber (the real client, no network):
every page of a Query is read, and only customer items count."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from fulfillment.contract import BY_LICENSE
from fulfillment.core.errors import StorageUnavailableError
from fulfillment.lifecycle.store import DynamoDBLifecycleStore

TABLE = "customers"
ARN = "arn:aws:license-manager::111122223333:license:l-0123456789abcdef0123456789abcdef"
QUERY = {
    "TableName": TABLE,
    "IndexName": BY_LICENSE,
    "KeyConditionExpression": "#a = :v",
    "ExpressionAttributeNames": {"#a": "license_arn"},
    "ExpressionAttributeValues": {":v": {"S": ARN}},
    "ProjectionExpression": "pk, sk",
}


def _item(pk: str, sk: str = "CUSTOMER") -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


@pytest.fixture
def client() -> Any:
    return boto3.client("dynamodb", region_name="us-east-1")


def test_every_page_of_the_index_is_read(client: Any) -> None:
    # Given an index answer over three pages, the middle one empty (DynamoDB stops a page at
    # 1 MB or at a filter's limit, so an empty page can still carry LastEvaluatedKey)
    first_stop = {"pk": {"S": "LICENSE#b"}, "sk": {"S": "CUSTOMER"}, "license_arn": {"S": ARN}}
    second_stop = {"pk": {"S": "LICENSE#c"}, "sk": {"S": "CUSTOMER"}, "license_arn": {"S": ARN}}
    with Stubber(client) as stub:
        stub.add_response(
            "query",
            {
                "Items": [_item("LICENSE#b"), _item("AGREEMENT#x", "AGREEMENT")],
                "LastEvaluatedKey": first_stop,
            },
            QUERY,
        )
        stub.add_response(
            "query",
            {"Items": [], "LastEvaluatedKey": second_stop},
            {**QUERY, "ExclusiveStartKey": first_stop},
        )
        stub.add_response(
            "query", {"Items": [_item("LICENSE#a")]}, {**QUERY, "ExclusiveStartKey": second_stop}
        )

        keys = DynamoDBLifecycleStore(client, TABLE).customer_keys_by_license(ARN)

        stub.assert_no_pending_responses()
    # Then the customers of every page, sorted, and nothing else the index holds
    assert keys == ["LICENSE#a", "LICENSE#b"]


def test_a_failing_page_is_the_stores_unavailable_error(client: Any) -> None:
    with Stubber(client) as stub:
        stub.add_response("query", {"Items": [], "LastEvaluatedKey": _item("LICENSE#b")}, QUERY)
        stub.add_client_error(
            "query", "ProvisionedThroughputExceededException", http_status_code=400
        )

        with pytest.raises(StorageUnavailableError):
            DynamoDBLifecycleStore(client, TABLE).customer_keys_by_license(ARN)
