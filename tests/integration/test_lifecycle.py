"""The real lifecycle handler against moto's DynamoDB server, with real-shaped SQS events;
GetEntitlements through botocore's Stubber on a real client (moto lacks the service)."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from botocore.stub import Stubber

from fulfillment.core import aws
from fulfillment.events import handler as publisher
from fulfillment.events.derivation import DomainEvent
from fulfillment.lifecycle import handler as lifecycle
from fulfillment.lifecycle.entitlements import ENTITLEMENT_REGION, MarketplaceEntitlements
from fulfillment.lifecycle.store import DynamoDBLifecycleStore
from fulfillment.registration.handler import lambda_handler as api_handler
from local.gateway import LambdaContext
from local.marketplace import TestCustomer
from tests.events import form_post
from tests.handoff_events import registration_request
from tests.integration.conftest import Handler, Stack
from tests.lifecycle_events import (
    ACCOUNT,
    AGREEMENT,
    LEGACY_ID,
    LEGACY_PK,
    LICENSE_ARN,
    LICENSE_PK,
    PRODUCT,
    event,
    eventbridge_names,
    sns_envelope,
    sns_names,
    sqs_event,
)

NO_FAILURES: dict[str, Any] = {"batchItemFailures": []}


@dataclass
class Lifecycle:
    stack: Stack
    stub: Stubber
    context: LambdaContext
    processor: lifecycle.LifecycleProcessor

    def handle(self, *payloads: dict[str, Any] | str) -> dict[str, Any]:
        return self.handle_batch(sqs_event(*payloads))

    def handle_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        """The real handler, as Lambda invokes it, with this flow's processor."""
        return lifecycle.lambda_handler(batch, self.context, processor=self.processor)

    def entitlements(self, *pages: list[dict[str, Any]], filters: dict[str, Any]) -> None:
        for number, page in enumerate(pages):
            answer: dict[str, Any] = {"Entitlements": page}
            expected: dict[str, Any] = {"ProductCode": PRODUCT, "Filter": filters}
            if number + 1 < len(pages):
                answer["NextToken"] = f"page-{number + 2}"
            if number:
                expected["NextToken"] = f"page-{number + 1}"
            self.stub.add_response("get_entitlements", answer, expected)

    def item(self, pk: str) -> dict[str, Any]:
        item = self.stack.customer(pk)
        assert item is not None, f"no customer item {pk}"
        return item

    def history(self, pk: str) -> list[str]:
        items = self.stack.dynamodb.query(
            TableName=self.stack.customers_table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :h)",
            ExpressionAttributeValues={":pk": {"S": pk}, ":h": {"S": "STATUS#"}},
        )["Items"]
        return [i["status"]["S"] for i in items]


@pytest.fixture
def flow(stack: Stack, lambda_context: LambdaContext) -> Iterator[Lifecycle]:
    # The stack's tables through the test's DynamoDB client; a real entitlement client, stubbed.
    client = boto3.client(
        "marketplace-entitlement", region_name=ENTITLEMENT_REGION, config=aws.QUEUE_CONFIG
    )
    processor = lifecycle.LifecycleProcessor(
        store=DynamoDBLifecycleStore(stack.dynamodb, stack.customers_table),
        entitlements=MarketplaceEntitlements(client),
        product_codes=frozenset({PRODUCT}),
    )
    with Stubber(client) as stub:
        yield Lifecycle(stack, stub, lambda_context, processor)
        stub.assert_no_pending_responses()


LICENSE_FILTER = {"LICENSE_ARN": [LICENSE_ARN]}
SEATS = {"ProductCode": PRODUCT, "Dimension": "Seats", "Value": {"IntegerValue": 25}}


@pytest.mark.parametrize("name", eventbridge_names())
def test_every_eventbridge_event_is_handled(flow: Lifecycle, name: str) -> None:
    if name.startswith("license_updated"):
        flow.entitlements([SEATS], filters=LICENSE_FILTER)

    response = flow.handle(event(name))

    assert response == NO_FAILURES
    if name.startswith("license"):
        item = flow.item(LICENSE_PK)
        assert item["license_arn"] == {"S": LICENSE_ARN}
        assert item["agreement_id"] == {"S": AGREEMENT}
        assert item["status_changed_at"]["S"] == event(name)["time"][:19] + ".000+00:00"
    elif name.startswith(("agreement_created", "agreement_ended")):
        parked = flow.stack.dynamodb.get_item(
            TableName=flow.stack.customers_table,
            Key={"pk": {"S": f"AGREEMENT#{AGREEMENT}"}, "sk": {"S": "AGREEMENT"}},
        )["Item"]
        assert "agreement_id" not in parked and "customer_aws_account_id" not in parked
        assert parked["acceptor_account_id"] == {"S": "111122223333"}
    else:
        assert flow.stack.items() == []


@pytest.mark.parametrize("name", sns_names())
def test_every_sns_message_is_handled(flow: Lifecycle, name: str) -> None:
    if name == "entitlement_updated":
        flow.entitlements([SEATS], filters={"CUSTOMER_IDENTIFIER": ["Ab1Cd2Ef3Gh"]})

    assert flow.handle(sns_envelope(name)) == NO_FAILURES

    item = flow.item(LEGACY_PK)
    assert item["product_code"] == {"S": PRODUCT}
    assert item["customer_identifier"] == {"S": "Ab1Cd2Ef3Gh"}
    if name == "entitlement_updated":
        assert "status" not in item
        assert item["entitlements"]["L"][0]["M"]["value"] == {"N": "25"}
    else:
        assert (
            item["status"]["S"]
            == {
                "subscribe_success": "subscribed",
                "subscribe_fail": "subscribe-failed",
                "unsubscribe_pending": "unsubscribe-pending",
                "unsubscribe_success": "unsubscribed",
            }[name]
        )
        assert item["status_source"] == {"S": name.replace("_", "-")}


def test_a_poison_message_fails_alone_and_is_logged_without_its_body(
    flow: Lifecycle, function_logs: io.StringIO
) -> None:
    # Given a batch with a poison body between two good notifications
    secret = '{"detail-type": "License Updated - Manufacturer", "x": "4111-secret"}'
    batch = sqs_event(
        sns_envelope("subscribe_success"),
        secret,
        sns_envelope("unsubscribe_pending"),
    )

    # When the handler processes it
    response = flow.handle_batch(batch)

    # Then only the poison record is reported, so SQS retries it alone (then the DLQ)
    assert response == {"batchItemFailures": [{"itemIdentifier": batch["Records"][1]["messageId"]}]}
    assert flow.item(LEGACY_PK)["status"] == {"S": "unsubscribe-pending"}
    logs = function_logs.getvalue()
    assert "lifecycle message is not a notification" in logs
    assert "4111-secret" not in logs


def test_a_batch_of_only_poison_fails_as_a_whole(flow: Lifecycle) -> None:
    with pytest.raises(BatchProcessingError):
        flow.handle("not json")


def test_the_manufacturer_and_proposer_variants_write_once(flow: Lifecycle) -> None:
    response = flow.handle(
        event("license_deprovisioned_manufacturer"), event("license_deprovisioned_proposer")
    )

    assert response == NO_FAILURES
    assert flow.history(LICENSE_PK) == ["deprovisioned"]


def test_ended_before_created_ends_in_the_newest_status(flow: Lifecycle) -> None:
    # Given the license exists (the customer is known by agreement)
    flow.entitlements([SEATS], filters=LICENSE_FILTER)
    flow.handle(event("license_updated_manufacturer"))

    # When the end arrives before the (older) creation
    flow.handle(event("agreement_ended_proposer"))
    flow.handle(event("agreement_created_proposer"))

    # Then the end stands
    item = flow.item(LICENSE_PK)
    assert item["status"] == {"S": "unsubscribed"}
    assert item["status_source"] == {"S": "Purchase Agreement Ended"}
    assert flow.history(LICENSE_PK) == ["subscribed", "unsubscribed"]


def test_an_end_parked_before_the_license_event_is_merged(flow: Lifecycle) -> None:
    flow.handle(event("agreement_created_manufacturer"), event("agreement_ended_manufacturer"))
    flow.entitlements([], filters=LICENSE_FILTER)

    flow.handle(event("license_updated_manufacturer"))

    item = flow.item(LICENSE_PK)
    assert item["status"] == {"S": "unsubscribed"}
    assert item["entitlements"] == {"L": []}


def test_notification_then_registration_make_one_customer(flow: Lifecycle) -> None:
    # Given the license event arrives before the buyer registers
    flow.entitlements([SEATS], filters=LICENSE_FILTER)
    flow.handle(event("license_updated_manufacturer"))

    # When the buyer registers
    token = flow.stack.marketplace.issue_token("new-style")
    assert api_handler(form_post(token), flow.context)["statusCode"] == 303

    # Then one customer item holds both
    customers = [i for i in flow.stack.items() if i["sk"]["S"] == "CUSTOMER"]
    assert [c["pk"]["S"] for c in customers] == [LICENSE_PK]
    item = customers[0]
    assert item["registration_count"] == {"N": "1"}
    assert item["status"] == {"S": "subscribed"}
    assert len(item["entitlements"]["L"]) == 1


def test_registration_then_notification_make_one_customer(flow: Lifecycle) -> None:
    token = flow.stack.marketplace.issue_token("legacy")
    assert api_handler(form_post(token), flow.context)["statusCode"] == 303

    flow.handle(sns_envelope("subscribe_success"))

    customers = [i for i in flow.stack.items() if i["sk"]["S"] == "CUSTOMER"]
    assert [c["pk"]["S"] for c in customers] == [LEGACY_PK]
    item = customers[0]
    assert item["registration_count"] == {"N": "1"}
    assert item["customer_aws_account_id"] == {"S": "444455556666"}
    assert item["status"] == {"S": "subscribed"}
    assert item["free_trial"] == {"BOOL": True}
    assert item["offer_id"] == {"S": "offer-abcexample123"}


# A legacy product's buyer: ResolveCustomer answers a CustomerIdentifier and a LicenseArn, so
# EventBridge (by license) and SNS (by identifier) notifications both name this customer.
LICENSED_LEGACY = TestCustomer(
    name="legacy-with-license",
    label="Legacy buyer with a license",
    product_code=PRODUCT,
    customer_aws_account_id=ACCOUNT,
    license_arn=LICENSE_ARN,
    customer_identifier=LEGACY_ID,
    agreement_id=AGREEMENT,
)


def _register_licensed_legacy(flow: Lifecycle) -> str:
    if LICENSED_LEGACY.name not in {c.name for c in flow.stack.marketplace.customers}:
        flow.stack.marketplace.add_customer(LICENSED_LEGACY)
    token = flow.stack.marketplace.issue_token(LICENSED_LEGACY.name)
    response = api_handler(form_post(token), flow.context)
    assert response["statusCode"] == 303, response.get("body")
    return parse_qs(urlsplit(response["headers"]["Location"]).query)["registration"][0]


def _customer_items(flow: Lifecycle) -> list[dict[str, Any]]:
    return [i for i in flow.stack.items() if i["sk"]["S"] == "CUSTOMER"]


def test_license_event_then_registration_of_a_legacy_customer_make_one_customer(
    flow: Lifecycle, seller_handoff: Handler
) -> None:
    # Given the license event of a legacy product's buyer arrives before the buyer registers
    flow.entitlements([SEATS], filters=LICENSE_FILTER)
    flow.handle(event("license_updated_manufacturer"))

    # When the buyer registers (ResolveCustomer answers the identifier and the license)
    registration_id = _register_licensed_legacy(flow)

    # Then one customer item holds registration, status and entitlements
    (item,) = _customer_items(flow)
    assert item["pk"] == {"S": LICENSE_PK}
    assert item["registration_count"] == {"N": "1"}
    assert item["customer_identifier"] == {"S": LEGACY_ID}
    assert item["status"] == {"S": "subscribed"}
    assert len(item["entitlements"]["L"]) == 1
    # and the seller's hand-off reports the status
    answer = seller_handoff(registration_request(registration_id), flow.context)
    customer = json.loads(answer["body"])["customer"]
    assert (answer["statusCode"], customer["status"]) == (200, "subscribed")
    assert customer["customerIdentifier"] == LEGACY_ID
    # and a later SNS notification, which names the identifier only, finds the same item
    flow.handle(sns_envelope("unsubscribe_pending"))
    (item,) = _customer_items(flow)
    assert item["status"] == {"S": "unsubscribe-pending"}


def test_registration_of_a_legacy_customer_then_both_notifications_make_one_customer(
    flow: Lifecycle,
) -> None:
    _register_licensed_legacy(flow)

    flow.handle(sns_envelope("subscribe_success"))
    flow.entitlements([SEATS], filters=LICENSE_FILTER)
    flow.handle(event("license_updated_manufacturer"))

    (item,) = _customer_items(flow)
    assert item["pk"] == {"S": LICENSE_PK}
    assert item["registration_count"] == {"N": "1"}
    assert item["status"] == {"S": "subscribed"}
    assert item["status_source"] == {"S": "License Updated"}
    assert item["offer_id"] == {"S": "offer-uovnpk2f6jq7s"}
    assert len(item["entitlements"]["L"]) == 1


def test_entitlements_over_two_pages_are_stored_typed(flow: Lifecycle) -> None:
    flow.entitlements(
        [SEATS],
        [{"Dimension": "Tier", "Value": {"StringValue": "pro"}}],
        filters=LICENSE_FILTER,
    )

    flow.handle(event("license_updated_proposer"))

    stored = flow.item(LICENSE_PK)["entitlements"]["L"]
    assert [e["M"]["dimension"]["S"] for e in stored] == ["Seats", "Tier"]
    assert stored[1]["M"]["type"] == {"S": "string"}
    assert "entitlements_updated_at" in flow.item(LICENSE_PK)


def test_throttled_entitlements_fail_the_record_and_write_nothing(flow: Lifecycle) -> None:
    flow.stub.add_client_error("get_entitlements", "ThrottlingException", http_status_code=400)
    batch = sqs_event(event("license_updated_manufacturer"), sns_envelope("subscribe_success"))

    response = flow.handle_batch(batch)

    assert response == {"batchItemFailures": [{"itemIdentifier": batch["Records"][0]["messageId"]}]}
    assert flow.stack.customer(LICENSE_PK) is None


def test_other_products_are_ignored(flow: Lifecycle, capsys: pytest.CaptureFixture[str]) -> None:
    response = flow.handle(sns_envelope("subscribe_success", message={"product-code": "prod-x"}))

    assert response == NO_FAILURES
    assert flow.stack.items() == []
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any(
        b.get("Outcome") == "ignored-product" and b.get("EventType") == "subscribe-success"
        for b in blobs
    )


class _RecordingBus:
    def __init__(self) -> None:
        self.events: list[DomainEvent] = []

    def put(self, events: Sequence[DomainEvent]) -> list[DomainEvent]:
        self.events += events
        return []


class _NoRetryQueue:
    def keep(self, events: Sequence[DomainEvent]) -> list[DomainEvent]:
        raise AssertionError("the bus refused nothing")


def test_a_stored_status_change_is_published_as_customer_status_changed(
    flow: Lifecycle,
) -> None:
    # Given a subscribed customer and the stream record of its change to unsubscribed
    flow.entitlements([SEATS], filters=LICENSE_FILTER)
    flow.handle(event("license_updated_manufacturer"))
    before = flow.item(LICENSE_PK)
    flow.handle(event("agreement_ended_manufacturer"))
    after = flow.item(LICENSE_PK)
    record = {
        "eventID": "1",
        "eventName": "MODIFY",
        "eventSource": publisher.STREAM_SOURCE,
        "dynamodb": {
            "Keys": {"pk": after["pk"], "sk": after["sk"]},
            "OldImage": before,
            "NewImage": after,
            "SequenceNumber": "100000000000000000001",
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }

    # When the publisher handles that record
    bus = _RecordingBus()
    wired = publisher.Publisher(bus=bus, retry_queue=_NoRetryQueue())
    response = publisher.lambda_handler({"Records": [record]}, flow.context, publisher=wired)

    # Then exactly one status change is announced, at the notification's time
    assert response == NO_FAILURES
    (announced,) = [e for e in bus.events if e.detail_type == "Customer Status Changed"]
    assert announced.detail["previousStatus"] == "subscribed"
    assert announced.detail["status"] == "unsubscribed"
    assert announced.detail["statusChangedAt"] == "2026-12-01T12:00:00.000+00:00"


# -- GetEntitlements through the Marketplace stand-in (its own filtering and faults) ----------


def _standin_processor(
    stack: Stack, subscription_products: frozenset[str] = frozenset()
) -> lifecycle.LifecycleProcessor:
    client = boto3.client(
        "marketplace-entitlement",
        region_name=ENTITLEMENT_REGION,
        endpoint_url=os.environ["AWS_ENDPOINT_URL_MARKETPLACE_METERING"],  # the stand-in
        config=aws.QUEUE_CONFIG,
    )
    return lifecycle.LifecycleProcessor(
        store=DynamoDBLifecycleStore(stack.dynamodb, stack.customers_table),
        entitlements=MarketplaceEntitlements(client, subscription_products),
        product_codes=frozenset({PRODUCT}),
    )


def _license_updated(
    stack: Stack, context: LambdaContext, processor: lifecycle.LifecycleProcessor
) -> dict[str, Any]:
    batch = sqs_event(event("license_updated_manufacturer"))
    return lifecycle.lambda_handler(batch, context, processor=processor)


def _assert_subscribed_without_entitlements(stack: Stack) -> None:
    stored = stack.customer(LICENSE_PK)
    assert stored is not None
    assert stored["status"] == {"S": "subscribed"}
    assert "entitlements" not in stored


def test_entitlements_of_other_licenses_and_customers_in_the_answer_are_not_stored(
    stack: Stack, lambda_context: LambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given GetEntitlements answers every entitlement of the product, whatever the filter:
    # this license's, the same account's second license's, and a legacy buyer's
    stack.marketplace.set_faults(ignore_entitlement_filters=True)

    # When the license event is processed
    response = _license_updated(stack, lambda_context, _standin_processor(stack))

    # Then only this license's entitlement is stored on its customer, and the rest counted
    assert response == NO_FAILURES
    stored = stack.customer(LICENSE_PK)
    assert stored is not None
    assert stored["status"] == {"S": "subscribed"}
    product = [c for c in stack.marketplace.customers if c.product_code == PRODUCT]
    ours = [d for c in product if c.license_arn == LICENSE_ARN for d, _ in c.entitlements]
    assert len(ours) < sum(len(c.entitlements) for c in product)  # the answer held others
    assert [e["M"]["dimension"]["S"] for e in stored["entitlements"]["L"]] == ours
    assert '"Reason":"OtherCustomer"' in capsys.readouterr().out.replace(" ", "")


def test_an_invalid_parameter_answer_applies_the_status_once_and_is_not_retried(
    stack: Stack, lambda_context: LambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given GetEntitlements refuses the request as invalid (every time it would be asked)
    stack.marketplace.set_faults(invalid_parameter_next=5)

    # When the license event is processed
    response = _license_updated(stack, lambda_context, _standin_processor(stack))

    # Then the record succeeds (SQS deletes it: no five deliveries, no dead letter) after one
    # call, the customer is subscribed, no entitlements are stored, and the refusal counted
    assert (response, stack.marketplace.entitlement_calls) == (NO_FAILURES, 1)
    _assert_subscribed_without_entitlements(stack)
    assert '"Reason":"InvalidParameter"' in capsys.readouterr().out.replace(" ", "")


def test_a_subscription_only_product_never_calls_get_entitlements(
    stack: Stack, lambda_context: LambdaContext
) -> None:
    processor = _standin_processor(stack, subscription_products=frozenset({PRODUCT}))

    response = _license_updated(stack, lambda_context, processor)

    assert (response, stack.marketplace.entitlement_calls) == (NO_FAILURES, 0)
    _assert_subscribed_without_entitlements(stack)
