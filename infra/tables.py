"""The customers, contacts and idempotency tables (and metering's usage table), built from
fulfillment.contract's schemas."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from constructs import Construct

from fulfillment.contract import CONTACTS, CUSTOMERS, IDEMPOTENCY, USAGE, TableSchema


def _attribute(name: str) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING)


def _table(
    scope: Construct,
    construct_id: str,
    schema: TableSchema,
    encryption_key: kms.IKey | None = None,
) -> dynamodb.Table:
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
        encryption=(
            dynamodb.TableEncryption.CUSTOMER_MANAGED
            if encryption_key
            else dynamodb.TableEncryption.AWS_MANAGED
        ),
        encryption_key=encryption_key,
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


def usage_table(scope: Construct, construct_id: str) -> dynamodb.Table:
    """Reported usage and metering results (infra/metering.py): billing evidence, retained."""
    return _table(scope, construct_id, USAGE)


class Tables(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.customers = _table(self, "Customers", CUSTOMERS)
        self.idempotency = _table(self, "Idempotency", IDEMPOTENCY)
        # The personal data gets a key of its own: its key policy and CloudTrail's KMS events
        # show who can and who did decrypt it, apart from everything else in the account.
        self.contacts_key = kms.Key(
            self,
            "ContactsKey",
            description="Encrypts the contacts table (buyers' contact details)",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.contacts = _table(self, "Contacts", CONTACTS, encryption_key=self.contacts_key)
