"""The real lifecycle handler against moto's DynamoDB server, with real-shaped SQS events;
GetEntitlements through botocore's Stubber on a real client (moto lacks the service), and
GetAgreementTerms over HTTP from the Marketplace stand-in (a real client, the real protocol)."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from botocore.config import Config
from botocore.stub import Stubber

from fulfillment.core import aws
from fulfillment.events import handler as publisher
from fulfillment.events.derivation import DomainEvent
from fulfillment.lifecycle import handler as lifecycle
from fulfillment.lifecycle.entitlements import ENTITLEMENT_REGION, MarketplaceEntitlements
from fulfillment.lifecycle.store import DynamoDBLifecycleStore
from fulfillment.lifecycle.terms import AGREEMENT_REGION, MarketplaceAgreementTerms
from fulfillment.registration.handler import lambda_handler as api_handler
from local.gateway import LambdaContext
from local.marketplace import TestCustomer, build_notifications
from tests.events import form_post
from tests.handoff_events import registration_request
from tests.integration.conftest import FunctionClients, Handler, Stack
from tests.integration.test_fault_injection import _replay, failing
from tests.lifecycle_events import (
    ACCOUNT,
    AGREEMENT,
    AWS_EVENT_LICENSE_PK,
    AWS_EVENT_PRODUCT,
    AWS_PRODUCT,
    FIXTURES,
    LEGACY_ID,
    LEGACY_PK,
    LICENSE_ARN,
    LICENSE_PK,
    PRODUCT,
    agreement_event,
    aws_eventbridge_event,
    aws_eventbridge_names,
    aws_sns_envelope,
    aws_sns_examples,
    event,
    eventbridge_names,
    renewal,
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
def products() -> frozenset[str]:
    """The products the processor serves (a test parametrizes it for AWS's example product)."""
    return frozenset({PRODUCT})


@pytest.fixture
def flow(
    stack: Stack, lambda_context: LambdaContext, products: frozenset[str]
) -> Iterator[Lifecycle]:
    # The stack's tables through the test's DynamoDB client; a real entitlement client, stubbed.
    client = boto3.client(
        "marketplace-entitlement", region_name=ENTITLEMENT_REGION, config=aws.QUEUE_CONFIG
    )
    processor = lifecycle.LifecycleProcessor(
        store=DynamoDBLifecycleStore(stack.dynamodb, stack.customers_table),
        entitlements=MarketplaceEntitlements(client),
        terms_source=_standin_terms(),
        product_codes=products,
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
        if name == "agreement_created_proposer":
            # The agreement's terms, read from the stand-in: the new-style buyer's, no trial
            assert parked["free_trial"] == {"BOOL": False}
    elif name == "agreement_amended_proposer":
        # An amendment changes no status; its terms are kept for the agreement's customer
        [parked] = flow.stack.items()
        assert parked["pk"] == {"S": f"AGREEMENT#{AGREEMENT}"}
        assert parked["free_trial"] == {"BOOL": False} and "status" not in parked
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


# AWS's own examples (aws_examples.json, each with the page it was copied from), as the stack
# delivers them. Only the SNS examples were in the stored copies of the Seller Guide
# (tests/fixtures/lifecycle/README.md). AWS prints the identifier with a leading space; the
# key and the item carry it trimmed.
AWS_CUSTOMER = "X01EXAMPLEX"
AWS_CUSTOMER_PK = f"LEGACY#{AWS_PRODUCT}#{AWS_CUSTOMER}"
STATUS_OF_ACTION = {
    "subscribe-success": "subscribed",
    "subscribe-fail": "subscribe-failed",
    "unsubscribe-pending": "unsubscribe-pending",
    "unsubscribe-success": "unsubscribed",
}


def test_every_aws_example_names_the_page_it_was_copied_from() -> None:
    examples = json.loads((FIXTURES / "aws_examples.json").read_text())

    for example in examples.values():
        assert example["_source"].startswith("https://docs.aws.amazon.com/marketplace/")


@pytest.mark.parametrize("products", [frozenset({AWS_PRODUCT})])
@pytest.mark.parametrize(("name", "action"), aws_sns_examples())
def test_an_aws_sns_example_stores_what_it_says(flow: Lifecycle, name: str, action: str) -> None:
    if action == "entitlement-updated":
        flow.stub.add_response(
            "get_entitlements",
            {"Entitlements": [{"ProductCode": AWS_PRODUCT, "Dimension": "Seats"}]},
            {"ProductCode": AWS_PRODUCT, "Filter": {"CUSTOMER_IDENTIFIER": [AWS_CUSTOMER]}},
        )

    response = flow.handle(aws_sns_envelope(name, action))

    assert response == NO_FAILURES
    item = flow.item(AWS_CUSTOMER_PK)
    assert item["product_code"] == {"S": AWS_PRODUCT}
    assert item["customer_identifier"] == {"S": AWS_CUSTOMER}
    if action == "entitlement-updated":
        assert "status" not in item
        assert item["entitlements"] == {"L": [{"M": {"dimension": {"S": "Seats"}}}]}
        assert "offer_id" not in item and "free_trial" not in item
    else:
        assert item["status"] == {"S": STATUS_OF_ACTION[action]}
        assert item["status_source"] == {"S": action}
        # The SNS envelope's publish time is the change's time
        assert item["status_changed_at"] == {"S": "2026-11-26T09:00:05.120+00:00"}
        assert item["offer_id"] == {"S": "offer-abcexample123"}
        assert item["free_trial"] == {"BOOL": True}


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


@pytest.mark.parametrize(
    "detail_type", ["Purchase Agreement Ending - Proposer", "Purchase Agreement Created - Acceptor"]
)
def test_an_unhandled_detail_type_is_acknowledged_logged_and_counted_as_ignored(
    flow: Lifecycle,
    function_logs: io.StringIO,
    capsys: pytest.CaptureFixture[str],
    detail_type: str,
) -> None:
    # Given a batch with a Marketplace event of a type the function does not handle, beside
    # a notification it does
    unhandled = {**event("agreement_ended_proposer"), "detail-type": detail_type}
    batch = sqs_event(unhandled, sns_envelope("subscribe_success"))

    # When the handler processes it
    response = flow.handle_batch(batch)

    # Then nothing fails (so nothing is retried or dead-lettered), the other record is applied,
    # the unhandled one writes nothing, and it is logged once at INFO and counted as ignored
    assert response == NO_FAILURES
    assert flow.item(LEGACY_PK)["status"] == {"S": "subscribed"}
    assert {item["pk"]["S"] for item in flow.stack.items()} == {LEGACY_PK}
    lines = [json.loads(line) for line in function_logs.getvalue().splitlines() if "{" in line[:1]]
    (ignored,) = [line for line in lines if line.get("detail_type") == detail_type]
    assert ignored["level"] == "INFO"
    assert ignored["message_id"] == batch["Records"][0]["messageId"]
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any(b.get("Outcome") == "ignored" and b.get("EventType") == "Unknown" for b in blobs)
    assert not any(b.get("Outcome") == "failed" for b in blobs)


def test_a_batch_of_only_an_unhandled_detail_type_is_acknowledged(flow: Lifecycle) -> None:
    assert (
        flow.handle({**event("license_updated_manufacturer"), "detail-type": "Offer Released"})
        == NO_FAILURES
    )


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


RENEWED = "agmt-2b3c4d5e6f7g8h9i0j1k2l3m4"
RENEWED_AT = "2027-11-26T08:59:59Z"


def _subscribed_on_the_first_agreement(flow: Lifecycle) -> None:
    flow.entitlements([SEATS], filters=LICENSE_FILTER)
    assert flow.handle(event("license_updated_manufacturer")) == NO_FAILURES


def test_a_renewal_moves_the_customer_so_the_new_agreements_end_finds_them(
    flow: Lifecycle,
) -> None:
    # Given a subscribed customer on the first agreement
    _subscribed_on_the_first_agreement(flow)

    # When the agreement renews (both roles' variants), then the new agreement ends
    assert (
        flow.handle(
            renewal("manufacturer", RENEWED, AGREEMENT, RENEWED_AT),
            renewal("proposer", RENEWED, AGREEMENT, RENEWED_AT),
        )
        == NO_FAILURES
    )
    renewed = flow.item(LICENSE_PK)
    flow.handle(agreement_event("agreement_ended_proposer", RENEWED, "2028-01-05T10:00:00Z"))

    # Then the renewal moved the customer without touching its status, and the end found it
    assert renewed["agreement_id"] == {"S": RENEWED}
    assert renewed["status"] == {"S": "subscribed"}
    assert renewed["agreement_changed_at"] == {"S": "2027-11-26T08:59:59.000+00:00"}
    item = flow.item(LICENSE_PK)
    assert item["status"] == {"S": "unsubscribed"}
    assert flow.history(LICENSE_PK) == ["subscribed", "unsubscribed"]


def test_an_end_of_the_old_agreement_after_a_renewal_does_not_unsubscribe(
    flow: Lifecycle,
) -> None:
    _subscribed_on_the_first_agreement(flow)
    flow.handle(renewal("proposer", RENEWED, AGREEMENT, RENEWED_AT))

    # The first agreement's end, after the renewal (not even marked RENEWED)
    response = flow.handle(
        agreement_event("agreement_ended_proposer", AGREEMENT, "2027-11-26T09:00:00Z")
    )

    assert response == NO_FAILURES
    item = flow.item(LICENSE_PK)
    assert item["status"] == {"S": "subscribed"}
    assert item["agreement_id"] == {"S": RENEWED}


def test_a_late_license_event_of_the_old_agreement_does_not_move_the_customer_back(
    flow: Lifecycle,
) -> None:
    # Given the customer renewed onto the new agreement
    _subscribed_on_the_first_agreement(flow)
    flow.handle(renewal("proposer", RENEWED, AGREEMENT, RENEWED_AT))

    # When a license event of the first agreement, older than the renewal, arrives late
    flow.entitlements([SEATS], filters=LICENSE_FILTER)
    response = flow.handle(event("license_updated_proposer", time="2027-06-01T00:00:00Z"))

    # Then its status is news, its agreement is not
    assert response == NO_FAILURES
    item = flow.item(LICENSE_PK)
    assert item["agreement_id"] == {"S": RENEWED}
    assert item["status_changed_at"] == {"S": "2027-06-01T00:00:00.000+00:00"}
    assert item["agreement_changed_at"] == {"S": "2027-11-26T08:59:59.000+00:00"}


def test_a_renewal_older_than_the_customers_agreement_moves_nothing(flow: Lifecycle) -> None:
    # Given the first agreement was named by a notification newer than the renewal
    flow.entitlements([SEATS], filters=LICENSE_FILTER)
    flow.handle(event("license_updated_manufacturer", time="2027-12-01T00:00:00Z"))

    flow.handle(renewal("proposer", RENEWED, AGREEMENT, RENEWED_AT))

    assert flow.item(LICENSE_PK)["agreement_id"] == {"S": AGREEMENT}


def test_an_end_of_the_new_agreement_parked_before_the_renewal_is_merged(
    flow: Lifecycle,
) -> None:
    # Given the new agreement's end arrived before its renewal event (nobody had it yet)
    _subscribed_on_the_first_agreement(flow)
    flow.handle(agreement_event("agreement_ended_proposer", RENEWED, "2028-01-05T10:00:00Z"))
    assert flow.item(LICENSE_PK)["status"] == {"S": "subscribed"}

    # When the renewal arrives
    flow.handle(renewal("manufacturer", RENEWED, AGREEMENT, RENEWED_AT))

    # Then the customer is on the new agreement and its (newer) end stands
    item = flow.item(LICENSE_PK)
    assert item["agreement_id"] == {"S": RENEWED}
    assert item["status"] == {"S": "unsubscribed"}


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


def _licensed_legacy_token(flow: Lifecycle) -> str:
    if LICENSED_LEGACY.name not in {c.name for c in flow.stack.marketplace.customers}:
        flow.stack.marketplace.add_customer(LICENSED_LEGACY)
    return flow.stack.marketplace.issue_token(LICENSED_LEGACY.name)


def _register_licensed_legacy(flow: Lifecycle, token: str | None = None) -> str:
    token = token or _licensed_legacy_token(flow)
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


def _sns_first(flow: Lifecycle) -> None:
    """SNS notifications of a legacy product's buyer before the buyer registers: they carry
    the identifier only, find no item, and write the legacy key."""
    flow.handle(sns_envelope("subscribe_success"))
    flow.entitlements([SEATS], filters={"CUSTOMER_IDENTIFIER": [LEGACY_ID]})
    flow.handle(sns_envelope("entitlement_updated"))
    assert [c["pk"]["S"] for c in _customer_items(flow)] == [LEGACY_PK]


def _assert_one_customer_with_the_sns_status(flow: Lifecycle, registration_id: str) -> None:
    (item,) = _customer_items(flow)
    assert item["pk"] == {"S": LICENSE_PK}
    assert item["registration_count"] == {"N": "1"}
    assert item["customer_identifier"] == {"S": LEGACY_ID}
    assert item["customer_aws_account_id"] == {"S": ACCOUNT}
    assert (item["status"], item["status_source"]) == (
        {"S": "subscribed"},
        {"S": "subscribe-success"},
    )
    assert item["status_changed_at"] == {"S": "2026-11-26T09:00:05.120+00:00"}
    assert (item["offer_id"], item["free_trial"]) == ({"S": "offer-abcexample123"}, {"BOOL": True})
    assert len(item["entitlements"]["L"]) == 1
    assert flow.history(LICENSE_PK) == ["subscribed"]
    assert flow.history(LEGACY_PK) == ["subscribed"]  # the old history ages out by its TTL


def test_sns_notifications_then_registration_of_a_legacy_customer_with_a_license_make_one_customer(
    flow: Lifecycle, seller_handoff: Handler
) -> None:
    # Given SNS notifications (identifier only) arrive before the buyer registers
    _sns_first(flow)

    # When the buyer registers (ResolveCustomer answers the identifier and a license)
    registration_id = _register_licensed_legacy(flow)

    # Then the early item is folded into the registered one: one customer, with its status
    _assert_one_customer_with_the_sns_status(flow, registration_id)
    answer = seller_handoff(registration_request(registration_id), flow.context)
    customer = json.loads(answer["body"])["customer"]
    assert (answer["statusCode"], customer["status"]) == (200, "subscribed")
    # and later notifications of either kind land on it
    flow.handle(sns_envelope("unsubscribe_pending"))
    (item,) = _customer_items(flow)
    assert item["status"] == {"S": "unsubscribe-pending"}


@pytest.mark.parametrize(
    ("sns", "status", "source", "offer"),
    [
        # the SNS notification is newer than the license event: it wins
        (
            "unsubscribe_pending",
            "unsubscribe-pending",
            "unsubscribe-pending",
            "offer-uovnpk2f6jq7s",
        ),
        # it is older: the license event's status stays, and so does its offer
        ("subscribe_fail", "subscribed", "License Updated", "offer-uovnpk2f6jq7s"),
    ],
)
def test_the_fold_keeps_the_newest_status_of_both_early_items(
    flow: Lifecycle, sns: str, status: str, source: str, offer: str
) -> None:
    # Given a license event (license key) and an SNS notification (legacy key), both early
    flow.entitlements([SEATS], filters=LICENSE_FILTER)
    flow.handle(event("license_updated_manufacturer"))
    flow.handle(sns_envelope(sns))
    assert len(_customer_items(flow)) == 2

    # When the buyer registers
    _register_licensed_legacy(flow)

    # Then one customer with the newest status, nothing moved backwards
    (item,) = _customer_items(flow)
    assert item["pk"] == {"S": LICENSE_PK}
    assert (item["status"], item["status_source"]) == ({"S": status}, {"S": source})
    assert item["offer_id"] == {"S": offer}
    assert item["registration_count"] == {"N": "1"}
    assert len(item["entitlements"]["L"]) == 1


def test_the_fold_is_idempotent_and_a_resubmission_changes_nothing(flow: Lifecycle) -> None:
    # Given SNS notifications first, then the registration that folded them
    _sns_first(flow)
    token = _licensed_legacy_token(flow)
    registration_id = _register_licensed_legacy(flow, token)
    folded = _customer_items(flow)

    # When the buyer submits the same token again, and registers once more later
    assert _register_licensed_legacy(flow, token) == registration_id
    assert _customer_items(flow) == folded
    _register_licensed_legacy(flow)

    # Then still one customer, its status and history unchanged
    (item,) = _customer_items(flow)
    assert item["registration_count"] == {"N": "2"}
    assert item["status"] == {"S": "subscribed"}
    assert flow.history(LICENSE_PK) == ["subscribed"]


def test_a_notification_written_while_the_fold_runs_is_folded_too(flow: Lifecycle) -> None:
    # Given an SNS notification first
    flow.handle(sns_envelope("subscribe_success"))

    # When another one lands on the legacy item between the fold's read and its write
    client = aws.dynamodb()
    landed: list[str] = []

    def notification_meanwhile(**_: Any) -> None:
        if not landed:
            landed.append("unsubscribe-pending")
            flow.handle(sns_envelope("unsubscribe_pending"))

    client.meta.events.register_first(
        "before-send.dynamodb.TransactWriteItems", notification_meanwhile
    )
    try:
        _register_licensed_legacy(flow)
    finally:
        client.meta.events.unregister(
            "before-send.dynamodb.TransactWriteItems", notification_meanwhile
        )

    # Then the fold tried again and kept it: one customer, the newest status
    assert landed
    (item,) = _customer_items(flow)
    assert item["pk"] == {"S": LICENSE_PK}
    assert item["status"] == {"S": "unsubscribe-pending"}
    assert item["registration_count"] == {"N": "1"}


def test_a_parked_registration_folds_the_early_item_when_it_is_replayed(
    flow: Lifecycle, fulfillment_url: Handler, clients: FunctionClients, seller_handoff: Handler
) -> None:
    # Given SNS notifications first, then a registration whose customer write is parked
    _sns_first(flow)
    token = _licensed_legacy_token(flow)
    with failing(clients.dynamodb, "TransactWriteItems", times=10):
        response = fulfillment_url(form_post(token), flow.context)
    assert response["statusCode"] == 202, response.get("body")
    (message,) = flow.stack.recovery_messages()
    assert [c["pk"]["S"] for c in _customer_items(flow)] == [LEGACY_PK]

    # When the recovery processor replays it (and SQS delivers it twice)
    _replay(flow.stack, message)
    _replay(flow.stack, message)

    # Then one customer with the notification's status, which the hand-off reports
    registration_id = json.loads(message["Body"])["registration_id"]
    _assert_one_customer_with_the_sns_status(flow, registration_id)
    answer = seller_handoff(registration_request(registration_id), flow.context)
    assert (answer["statusCode"], json.loads(answer["body"])["customer"]["status"]) == (
        200,
        "subscribed",
    )


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
        terms_source=_standin_terms(),
        product_codes=frozenset({PRODUCT}),
    )


def _standin_terms(config: Config = aws.QUEUE_CONFIG) -> MarketplaceAgreementTerms:
    """GetAgreementTerms answered by the stand-in: its customers' agreements, trial or not."""
    client = boto3.client(
        "marketplace-agreement",
        region_name=AGREEMENT_REGION,
        endpoint_url=os.environ["AWS_ENDPOINT_URL_MARKETPLACE_AGREEMENT"],
        config=config,
    )
    return MarketplaceAgreementTerms(client)


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


# -- free trials: GetAgreementTerms through the Marketplace stand-in ---------------------------


def _subscription(stack: Stack, name: str) -> dict[str, Any]:
    """The batch Marketplace causes when the stand-in's buyer ``name`` subscribes: the
    agreement's creation in both roles, then the license."""
    (customer,) = [c for c in stack.marketplace.customers if c.name == name]
    when = datetime.now(UTC).replace(microsecond=0)
    return sqs_event(*build_notifications(customer, "subscribe", when))


def _subscribe(stack: Stack, context: LambdaContext, name: str) -> dict[str, Any]:
    """``name`` subscribes, through the real handler."""
    batch = _subscription(stack, name)
    return lifecycle.lambda_handler(batch, context, processor=_standin_processor(stack))


def _registered_customer(
    stack: Stack, name: str, context: LambdaContext, seller_handoff: Handler
) -> dict[str, Any]:
    token = stack.marketplace.issue_token(name)
    response = api_handler(form_post(token), context)
    assert response["statusCode"] == 303, response.get("body")
    registration = parse_qs(urlsplit(response["headers"]["Location"]).query)["registration"][0]
    answer = seller_handoff(registration_request(registration), context)
    assert answer["statusCode"] == 200, answer["body"]
    customer: dict[str, Any] = json.loads(answer["body"])["customer"]
    return customer


@pytest.mark.parametrize(("name", "trial"), [("free-trial", True), ("new-style", False)])
def test_the_seller_learns_whether_a_new_buyer_is_on_a_free_trial(
    stack: Stack, lambda_context: LambdaContext, seller_handoff: Handler, name: str, trial: bool
) -> None:
    # Given a buyer subscribed (the agreement's terms read once, for the proposer's event)
    assert _subscribe(stack, lambda_context, name) == NO_FAILURES
    assert stack.marketplace.terms_calls == 1

    # When the buyer registers and the seller's backend looks the registration up
    customer = _registered_customer(stack, name, lambda_context, seller_handoff)

    # Then it says whether the agreement has a free trial, and which offer it came from
    assert customer["freeTrial"] is trial
    assert customer["offerId"] == f"offer-{name}"
    assert customer["status"] == "subscribed"


def test_terms_refused_leave_the_trial_unknown_and_the_record_succeeds(
    stack: Stack,
    lambda_context: LambdaContext,
    seller_handoff: Handler,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given GetAgreementTerms refuses (the role may not read the terms)
    stack.marketplace.set_faults(terms_denied_next=1)

    # When the trial buyer subscribes
    response = _subscribe(stack, lambda_context, "free-trial")

    # Then nothing is retried, the buyer is subscribed, the trial unknown, the refusal counted
    assert (response, stack.marketplace.terms_calls) == (NO_FAILURES, 1)
    customer = _registered_customer(stack, "free-trial", lambda_context, seller_handoff)
    assert (customer["status"], customer["freeTrial"]) == ("subscribed", None)
    assert '"Reason":"AccessDenied"' in capsys.readouterr().out.replace(" ", "")


def test_throttled_terms_fail_the_proposers_event_alone_for_sqs_to_retry(
    stack: Stack, lambda_context: LambdaContext
) -> None:
    # Given GetAgreementTerms throttles (one attempt per call here, five when deployed)
    stack.marketplace.throttle_next(1)
    processor = _standin_processor(stack)
    processor.terms_source = _standin_terms(Config(retries={"total_max_attempts": 1}))
    batch = _subscription(stack, "free-trial")

    response = lifecycle.lambda_handler(batch, lambda_context, processor=processor)

    # Then only the proposer's creation event fails (SQS delivers it again); the others are
    # recorded, and its redelivery records the trial
    proposers = [r["messageId"] for r in batch["Records"] if "Created - Proposer" in r["body"]]
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == proposers
    customer = stack.customer("LICENSE#l-0a1b2c3d4e5f60718293a4b5c6d7e8f9")
    assert customer is not None and "free_trial" not in customer
    retry = {"Records": [r for r in batch["Records"] if r["messageId"] in proposers]}
    assert lifecycle.lambda_handler(retry, lambda_context, processor=processor) == NO_FAILURES
    customer = stack.customer("LICENSE#l-0a1b2c3d4e5f60718293a4b5c6d7e8f9")
    assert customer is not None and customer["free_trial"] == {"BOOL": True}


# -- AWS's own EventBridge examples (aws_eventbridge_examples.json), as the stack delivers them --

# The buyer of AWS's examples, known to the stand-in: its agreement has a free trial.
AWS_EVENT_BUYER = TestCustomer(
    name="aws-eventbridge-example",
    label="The buyer of AWS's EventBridge examples",
    product_code=AWS_EVENT_PRODUCT,
    customer_aws_account_id="845735284135",
    license_arn="arn:aws:license-manager:us-east-1:123456789012:l-e52ca6f38bf84d0fafb8802ca15ac11x",
    customer_identifier="",
    agreement_id="agmt-4mwg1nevbokzw95eca5797ixs",
    free_trial=True,
)
# The day before AWS's examples: the buyer's agreement was created and its license granted.
DAY_BEFORE = "2024-08-29T21:36:03Z"
GIVEN_SUBSCRIBED = ("agreement_created_proposer", "license_updated_manufacturer")
EXAMPLE_OFFER, LICENSE_OFFER = "offer-1234567890123", "8kkr91jo647j3qxlcjhlqce7y"
# example -> (subscribed the day before?, what the customer item (or the parked agreement,
# before any customer) then says: status, agreement, offer, free trial)
AWS_EVENT_OUTCOMES: dict[str, tuple[bool, str, tuple[Any, ...] | None]] = {
    "agreement_created_proposer": (False, "parked", ("pending", None, EXAMPLE_OFFER, True)),
    "agreement_created_manufacturer": (False, "parked", ("pending", None, EXAMPLE_OFFER, None)),
    "agreement_created_renewal_proposer": (
        True,
        "customer",
        # Moved to the new agreement; its terms are unknown to the stand-in, the old one's gone
        ("subscribed", "agmt-newrenewalagreementid", EXAMPLE_OFFER, None),
    ),
    "agreement_amended_proposer": (
        True,
        "customer",
        ("subscribed", "agmt-4mwg1nevbokzw95eca5797ixs", LICENSE_OFFER, True),
    ),
    "agreement_amended_manufacturer": (
        True,
        "customer",
        ("subscribed", "agmt-4mwg1nevbokzw95eca5797ixs", LICENSE_OFFER, True),
    ),
    "agreement_ended_proposer": (
        True,
        "customer",
        ("unsubscribed", "agmt-4mwg1nevbokzw95eca5797ixs", EXAMPLE_OFFER, True),
    ),
    "agreement_ended_manufacturer": (
        True,
        "customer",
        ("unsubscribed", "agmt-4mwg1nevbokzw95eca5797ixs", EXAMPLE_OFFER, True),
    ),
    "license_updated_manufacturer": (
        False,
        "customer",
        ("subscribed", "agmt-4mwg1nevbokzw95eca5797ixs", LICENSE_OFFER, None),
    ),
    "license_deprovisioned_manufacturer": (
        False,
        "customer",
        ("deprovisioned", "agmt-4mwg1nevbokzw95eca5797ixs", LICENSE_OFFER, None),
    ),
    # Detail types the processor does not handle: acknowledged, nothing stored
    "agreement_advisory_issued_manufacturer": (False, "nothing", None),
    "agreement_ending_proposer": (False, "nothing", None),
}


def _facts(item: dict[str, Any]) -> tuple[Any, ...]:
    def text(name: str) -> str | None:
        return item[name]["S"] if name in item else None

    trial = item["free_trial"]["BOOL"] if "free_trial" in item else None
    return text("status"), text("agreement_id"), text("offer_id"), trial


def test_every_aws_eventbridge_example_is_in_the_outcome_table() -> None:
    examples = json.loads((FIXTURES / "aws_eventbridge_examples.json").read_text())

    assert set(AWS_EVENT_OUTCOMES) == set(aws_eventbridge_names())
    for example in examples.values():
        assert example["_source"].startswith("https://docs.aws.amazon.com/marketplace/")


@pytest.mark.parametrize("name", aws_eventbridge_names())
def test_an_aws_eventbridge_example_stores_what_it_says(
    stack: Stack, lambda_context: LambdaContext, name: str
) -> None:
    if AWS_EVENT_BUYER.name not in {c.name for c in stack.marketplace.customers}:
        stack.marketplace.add_customer(AWS_EVENT_BUYER)
    processor = _standin_processor(stack)
    processor.product_codes = frozenset({AWS_EVENT_PRODUCT})
    given, where, expected = AWS_EVENT_OUTCOMES[name]
    if given:
        before = [aws_eventbridge_event(n, time=DAY_BEFORE) for n in GIVEN_SUBSCRIBED]
        assert lifecycle.lambda_handler(
            sqs_event(*before), lambda_context, processor=processor
        ) == (NO_FAILURES)

    # When AWS's example arrives as the stack delivers it (the event JSON in an SQS body)
    response = lifecycle.lambda_handler(
        sqs_event(aws_eventbridge_event(name)), lambda_context, processor=processor
    )

    # Then it is acknowledged, and the stored state is what the example says
    assert response == NO_FAILURES
    customer = stack.customer(AWS_EVENT_LICENSE_PK)
    parked = [i for i in stack.items() if i["pk"]["S"].startswith("AGREEMENT#")]
    if where == "customer":
        assert customer is not None
        assert _facts(customer) == expected
        # The license as received (AWS prints it without "arn:"), keyed by its own id
        assert customer["license_arn"] == {"S": AWS_EVENT_BUYER.license_arn}
        assert customer["customer_aws_account_id"] == {"S": "845735284135"}
    elif where == "parked":
        assert customer is None
        (agreement,) = parked
        assert _facts(agreement) == expected
        assert agreement["acceptor_account_id"] == {"S": "845735284135"}
    else:
        assert stack.items() == []
