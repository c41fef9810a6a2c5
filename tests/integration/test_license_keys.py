"""One license, one customer, whichever way Marketplace spells the license's ARN and whichever
comes first: the real fulfillment, lifecycle and hand-off handlers against moto's DynamoDB
server (docs/lifecycle.md, "The customer key")."""

# ruff: noqa: F811 - the lifecycle flow fixture is imported from test_lifecycle
from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from fulfillment.registration.handler import lambda_handler as api_handler
from tests.events import form_post
from tests.handoff_events import registration_request
from tests.integration.conftest import Handler
from tests.integration.test_lifecycle import (  # noqa: F401 - fixtures
    NO_FAILURES,
    SEATS,
    Lifecycle,
    flow,
    products,
)
from tests.lifecycle_events import LICENSE_ARN, LICENSE_PK, event, sqs_event

LICENSE_ID = "l-0123456789abcdef0123456789abcdef"
# The one license of the stand-in's "new-style" buyer, as each source spells it.
SPELLINGS = {
    "resolve-customer": LICENSE_ARN,
    "eventbridge-example": f"arn:aws:license-manager:us-east-1:111122223333:{LICENSE_ID}",
    "agreement-example": f"arn:aws:license-manager::111122223333:license/{LICENSE_ID}",
    "license-example-without-arn-prefix": f"aws:license-manager::111122223333:license:{LICENSE_ID}",
}
each_spelling = pytest.mark.parametrize("arn", SPELLINGS.values(), ids=SPELLINGS.keys())
# Before license ids keyed customers, the key was the ARN as received.
ARN_PK = f"LICENSE#{LICENSE_ARN}"


def _license_updated(flow: Lifecycle, arn: str) -> dict[str, Any]:
    """`License Updated` naming the license as ``arn``, its GetEntitlements call expected."""
    payload = event("license_updated_manufacturer", id=str(uuid.uuid4()))
    payload["detail"]["license"]["arn"] = arn
    as_queried = arn if arn.startswith("arn:") else f"arn:{arn}"
    flow.entitlements([SEATS], filters={"LICENSE_ARN": [as_queried]})
    return payload


def _register(flow: Lifecycle) -> str:
    response = api_handler(form_post(flow.stack.marketplace.issue_token("new-style")), flow.context)
    assert response["statusCode"] == 303, response.get("body")
    return parse_qs(urlsplit(response["headers"]["Location"]).query)["registration"][0]


def _customers(flow: Lifecycle) -> dict[str, dict[str, Any]]:
    return {i["pk"]["S"]: i for i in flow.stack.items() if i["sk"]["S"] == "CUSTOMER"}


def _handoff(seller_handoff: Handler, flow: Lifecycle, registration_id: str) -> dict[str, Any]:
    answer = seller_handoff(registration_request(registration_id), flow.context)
    assert answer["statusCode"] == 200, answer["body"]
    customer: dict[str, Any] = json.loads(answer["body"])["customer"]
    return customer


def _as_before_license_ids(flow: Lifecycle) -> None:
    """Move the customer to the key an earlier version wrote it under (its ARN), with its
    sessions naming that key, as such a table holds it after the upgrade."""
    dynamodb, table = flow.stack.dynamodb, flow.stack.customers_table
    item = _customers(flow)[LICENSE_PK]
    dynamodb.put_item(TableName=table, Item={**item, "pk": {"S": ARN_PK}})
    dynamodb.delete_item(TableName=table, Key={"pk": {"S": LICENSE_PK}, "sk": {"S": "CUSTOMER"}})
    for session in flow.stack.items():
        if session.get("customer_pk") == {"S": LICENSE_PK}:
            dynamodb.put_item(TableName=table, Item={**session, "customer_pk": {"S": ARN_PK}})


@each_spelling
def test_a_license_event_in_any_spelling_then_registration_make_one_customer(
    flow: Lifecycle, seller_handoff: Handler, arn: str
) -> None:
    # Given the license event comes first, spelling the license its way
    assert flow.handle(_license_updated(flow, arn)) == NO_FAILURES
    # it is stored under the license's id, with the ARN as received
    (early,) = _customers(flow).values()
    assert early["pk"] == {"S": LICENSE_PK}
    assert early["license_arn"]["S"].endswith(arn)

    # When the buyer registers (ResolveCustomer spells it `...:license:l-...`)
    registration_id = _register(flow)

    # Then one customer holds the registration, the status and the entitlements
    assert list(_customers(flow)) == [LICENSE_PK]
    item = _customers(flow)[LICENSE_PK]
    assert item["registration_count"] == {"N": "1"}
    assert (item["status"], len(item["entitlements"]["L"])) == ({"S": "subscribed"}, 1)
    customer = _handoff(seller_handoff, flow, registration_id)
    assert (customer["status"], customer["licenseArn"]) == ("subscribed", LICENSE_ARN)


@each_spelling
def test_registration_then_a_license_event_in_any_spelling_make_one_customer(
    flow: Lifecycle, seller_handoff: Handler, arn: str
) -> None:
    registration_id = _register(flow)

    assert flow.handle(_license_updated(flow, arn)) == NO_FAILURES

    assert list(_customers(flow)) == [LICENSE_PK]
    item = _customers(flow)[LICENSE_PK]
    assert (item["registration_count"], item["status"]) == ({"N": "1"}, {"S": "subscribed"})
    # The ARN stays as ResolveCustomer answered it: identity is never overwritten
    assert item["license_arn"] == {"S": LICENSE_ARN}
    assert _handoff(seller_handoff, flow, registration_id)["status"] == "subscribed"


@each_spelling
def test_a_customer_registered_under_its_arn_keeps_its_item(
    flow: Lifecycle, seller_handoff: Handler, arn: str
) -> None:
    # Given a customer registered before license ids keyed customers (key = its ARN)
    first_registration = _register(flow)
    _as_before_license_ids(flow)

    # When a license event comes, in any spelling, and the buyer registers again
    assert flow.handle(_license_updated(flow, arn)) == NO_FAILURES
    second_registration = _register(flow)

    # Then the one item under the ARN holds all of it: no second customer appears
    assert list(_customers(flow)) == [ARN_PK]
    item = _customers(flow)[ARN_PK]
    assert (item["registration_count"], item["status"]) == ({"N": "2"}, {"S": "subscribed"})
    # and the seller sees one customer through either registration
    first = _handoff(seller_handoff, flow, first_registration)
    assert _handoff(seller_handoff, flow, second_registration) == first
    assert first["status"] == "subscribed"


def test_an_unregistered_item_under_its_arn_is_folded_in_at_registration(
    flow: Lifecycle, seller_handoff: Handler
) -> None:
    # Given a license event that came first under the earlier key (its ARN)
    assert flow.handle(_license_updated(flow, LICENSE_ARN)) == NO_FAILURES
    _as_before_license_ids(flow)

    # When the buyer registers
    registration_id = _register(flow)

    # Then the early item joined the customer under the license id, and is gone
    assert list(_customers(flow)) == [LICENSE_PK]
    item = _customers(flow)[LICENSE_PK]
    assert (item["registration_count"], item["status"]) == ({"N": "1"}, {"S": "subscribed"})
    assert len(item["entitlements"]["L"]) == 1
    assert _handoff(seller_handoff, flow, registration_id)["status"] == "subscribed"


def test_a_license_event_naming_no_license_fails_alone_and_stores_nothing(
    flow: Lifecycle,
) -> None:
    bad = event("license_updated_manufacturer", id=str(uuid.uuid4()))
    bad["detail"]["license"]["arn"] = "arn:aws:iam::111122223333:role/not-a-license"
    good = _license_updated(flow, LICENSE_ARN)
    batch = sqs_event(bad, good)

    response = flow.handle_batch(batch)

    assert response == {"batchItemFailures": [{"itemIdentifier": batch["Records"][0]["messageId"]}]}
    assert list(_customers(flow)) == [LICENSE_PK]
