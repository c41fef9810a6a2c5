"""The customers table and the idempotency table, built from infra/schema.py."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from infra.schema import CUSTOMERS, IDEMPOTENCY, TableSchema


def _attribute(name: str) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING)


def _table(scope: Construct, construct_id: str, schema: TableSchema) -> dynamodb.Table:
    table = dynamodb.Table(
        scope,
        construct_id,
        partition_key=_attribute(schema.partition_key),
        sort_key=_attribute(schema.sort_key) if schema.sort_key else None,
        time_to_live_attribute=schema.ttl_attribute,
        stream=(
            dynamodb.StreamViewType[schema.stream_view_type] if schema.stream_view_type else None
        ),
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        encryption=dynamodb.TableEncryption.AWS_MANAGED,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        deletion_protection=True,
        # Customer records are the seller's business records: never deleted with the stack.
        removal_policy=RemovalPolicy.RETAIN,
    )
    for index in schema.indexes:
        table.add_global_secondary_index(
            index_name=index.name,
            partition_key=_attribute(index.partition_key),
            sort_key=_attribute(index.sort_key) if index.sort_key else None,
            projection_type=dynamodb.ProjectionType.ALL,
        )
    return table


class Tables(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.customers = _table(self, "Customers", CUSTOMERS)
        self.idempotency = _table(self, "Idempotency", IDEMPOTENCY)
