"""Writes that botocore retries after an attempt that did reach DynamoDB.

A read timeout on a write that DynamoDB applied makes botocore send it again; the load run
caught the customer counted twice that way. The second attempt must find its own first one.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fulfillment.customers.models import ResolvedCustomer
from fulfillment.customers.store import DynamoDBCustomerStore
from tests.integration.conftest import PRODUCT, Stack

CUSTOMER = ResolvedCustomer(
    PRODUCT, "111122223333", "arn:aws:license-manager::111122223333:license:l-retry", None, "agmt-1"
)
AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _store(stack: Stack) -> DynamoDBCustomerStore:
    return DynamoDBCustomerStore(stack.dynamodb, stack.customers_table)


def test_a_repeated_customer_write_counts_the_registration_once(stack: Stack) -> None:
    store = _store(stack)

    first = store.record_registration(CUSTOMER, AT, "registration-1")
    repeated = store.record_registration(CUSTOMER, AT, "registration-1")

    item = stack.customer(CUSTOMER.customer_key)
    assert item is not None
    assert item["registration_count"] == {"N": "1"}
    assert (first, repeated) == (True, True)  # still a new customer, as the first attempt said


def test_a_repeated_write_of_a_returning_customer_stays_returning(stack: Stack) -> None:
    store = _store(stack)
    store.record_registration(CUSTOMER, AT, "registration-1")

    first = store.record_registration(CUSTOMER, AT, "registration-2")
    repeated = store.record_registration(CUSTOMER, AT, "registration-2")

    assert (first, repeated) == (False, False)
    assert stack.customer(CUSTOMER.customer_key)["registration_count"] == {"N": "2"}


def test_a_repeated_session_write_is_not_a_failure(stack: Stack) -> None:
    store = _store(stack)
    args = ("session-abcdefghijklmnop", CUSTOMER.customer_key, PRODUCT, AT, 1_900_000_000, "csrf")

    store.create_session(*args)
    store.create_session(*args)

    sessions = [i for i in stack.items() if i["sk"]["S"] == "SESSION"]
    assert len(sessions) == 1
