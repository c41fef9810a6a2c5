"""The table definitions the stack and the local stack create, as the function needs them."""

from __future__ import annotations

from infra.schema import CONTACTS, CUSTOMERS, IDEMPOTENCY, create_table_request


def test_indexed_attributes_are_the_ones_registration_writes() -> None:
    # ... and, for by_status, the lifecycle's status over the item's own sort key: values that
    # are never empty strings (DynamoDB refuses those in an index key).
    written = {
        "license_arn",
        "customer_identifier",
        "agreement_id",
        "customer_aws_account_id",
        "product_code",
        "status",
        "sk",
    }

    indexed = {key for index in CUSTOMERS.indexes for key in (index.partition_key, index.sort_key)}

    assert indexed - {None} <= written


def test_idempotency_table_uses_powertools_default_attributes() -> None:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    layer = DynamoDBPersistenceLayer(table_name="t", boto3_client=object())  # type: ignore[arg-type]

    assert layer.key_attr == IDEMPOTENCY.partition_key
    assert layer.expiry_attr == IDEMPOTENCY.ttl_attribute


def test_create_table_request_declares_every_key_attribute_once() -> None:
    request = create_table_request(CUSTOMERS, "customers")

    names = [d["AttributeName"] for d in request["AttributeDefinitions"]]
    assert len(names) == len(set(names))
    assert {i["IndexName"] for i in request["GlobalSecondaryIndexes"]} == {
        "by_license",
        "by_account",
        "by_customer_identifier",
        "by_agreement",
        "by_status",
    }


def test_customers_table_streams_both_images_for_the_events_publisher() -> None:
    request = create_table_request(CUSTOMERS, "customers")

    assert request["StreamSpecification"] == {
        "StreamEnabled": True,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    assert "StreamSpecification" not in create_table_request(IDEMPOTENCY, "idempotency")


def test_contacts_table_is_keyed_by_the_customer_key_alone_with_no_stream_or_expiry() -> None:
    request = create_table_request(CONTACTS, "contacts")

    assert request["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert request["AttributeDefinitions"] == [{"AttributeName": "pk", "AttributeType": "S"}]
    assert CONTACTS.ttl_attribute is None
    assert "StreamSpecification" not in request
    assert "GlobalSecondaryIndexes" not in request
