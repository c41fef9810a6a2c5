"""Metering end to end, without the API: usage added through the real store (moto's DynamoDB
server), the hourly run through real boto3 against the Marketplace stand-in, whose ledger
says what was billed. Customers are subscribed the real way: registration, then the
lifecycle events Marketplace sends."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from botocore.config import Config

from fulfillment.contract import USAGE
from fulfillment.lifecycle import handler as lifecycle
from fulfillment.metering.marketplace import MarketplaceMeter
from fulfillment.metering.records import Outcome
from fulfillment.metering.run import RunReport, meter_closed_hours
from fulfillment.metering.store import Accepted, Duplicate, DynamoDBUsageStore, Rejected
from fulfillment.metering.usage import CustomerRef, UsageRejection, UsageReport, hour_of
from fulfillment.registration.handler import lambda_handler as api_handler
from infra.schema import create_table_request
from local.gateway import LambdaContext
from local.marketplace import build_notifications
from tests.events import form_post
from tests.integration.conftest import Stack
from tests.integration.test_lifecycle import _standin_processor
from tests.lifecycle_events import PRODUCT, sqs_event

LICENSE = "arn:aws:license-manager::111122223333:license:l-0123456789abcdef0123456789abcdef"
KEY = "LICENSE#l-0123456789abcdef0123456789abcdef"
LEGACY_KEY = f"LEGACY#{PRODUCT}#Ab1Cd2Ef3Gh"
DIMENSIONS = ("requests", "storage")


class Metering:
    def __init__(self, stack: Stack, usage_table: str, context: LambdaContext) -> None:
        self.stack = stack
        self.usage_table = usage_table
        self.context = context
        self.store = DynamoDBUsageStore(stack.dynamodb, usage_table, stack.customers_table)
        client = boto3.client(
            "meteringmarketplace",
            region_name="us-east-1",
            endpoint_url=os.environ["AWS_ENDPOINT_URL_MARKETPLACE_METERING"],
            config=Config(retries={"total_max_attempts": 1}),
        )
        self.meter = MarketplaceMeter(client, sleep=lambda _: None)

    def subscribe(self, name: str, when: datetime) -> None:
        """``name`` subscribes at ``when`` and registers, as Marketplace and the buyer would."""
        (customer,) = [c for c in self.stack.marketplace.customers if c.name == name]
        batch = sqs_event(*build_notifications(customer, "subscribe", when))
        answer = lifecycle.lambda_handler(
            batch, self.context, processor=_standin_processor(self.stack)
        )
        assert answer == {"batchItemFailures": []}
        token = self.stack.marketplace.issue_token(name)
        response = api_handler(form_post(token), self.context)
        assert response["statusCode"] == 303, response.get("body")
        self.registration = parse_qs(urlsplit(response["headers"]["Location"]).query)[
            "registration"
        ][0]

    def report(
        self,
        quantity: str,
        at: datetime,
        *,
        usage_id: str | None = None,
        key: str = KEY,
        dimension: str = "requests",
    ) -> Any:
        report = UsageReport(
            usage_id or uuid.uuid4().hex,
            CustomerRef(customer_key=key),
            dimension,
            Decimal(quantity),
            at,
        )
        return self.store.add(report, key, datetime.now(UTC))

    def run(self, now: datetime | None = None, **options: Any) -> RunReport:
        # Half past this test module's hour, whatever the clock says by now: the hours metered
        # stay the ones the test reported in.
        return meter_closed_hours(
            now or THIS_HOUR + timedelta(minutes=30),
            store=self.store,
            meter=self.meter,
            dimensions=DIMENSIONS,
            product_codes=frozenset({PRODUCT}),
            **options,
        )

    def billed(self) -> dict[tuple[str, str, str], Decimal]:
        return self.stack.marketplace.metering.billed()

    def results(self, hour: datetime) -> dict[tuple[str, str], str]:
        items = self.stack.dynamodb.query(
            TableName=self.usage_table,
            KeyConditionExpression="pk = :h AND begins_with(sk, :r)",
            ExpressionAttributeValues={
                ":h": {"S": "HOUR#" + hour.isoformat(timespec="seconds")},
                ":r": {"S": "RESULT#"},
            },
        )["Items"]
        return {(i["customer_key"]["S"], i["dimension"]["S"]): i["outcome"]["S"] for i in items}


@pytest.fixture
def metering(stack: Stack, lambda_context: LambdaContext) -> Metering:
    name = f"usage-{uuid.uuid4().hex[:8]}"
    stack.dynamodb.create_table(**create_table_request(USAGE, name))
    return Metering(stack, name, lambda_context)


NOW = datetime.now(UTC)
THIS_HOUR = hour_of(NOW)
TWO_HOURS_AGO = THIS_HOUR - timedelta(hours=2)


def test_reported_usage_is_billed_once_in_its_hour_with_zero_for_the_quiet_ones(
    metering: Metering,
) -> None:
    # Given a buyer subscribed three hours ago who used 7 + 5.5 requests two hours ago
    metering.subscribe("new-style", THIS_HOUR - timedelta(hours=3))
    assert metering.report("7", TWO_HOURS_AGO + timedelta(minutes=10)) == Accepted(TWO_HOURS_AGO)
    assert metering.report("5.5", TWO_HOURS_AGO + timedelta(minutes=50)) == Accepted(TWO_HOURS_AGO)

    # When the hourly run meters the closed hours, and runs again
    first = metering.run()
    calls = metering.meter.calls
    second = metering.run()

    # Then Marketplace billed 12.5 requests for that hour, zero for every other hour and
    # dimension since the subscription, each once; the rerun sent nothing
    billed = metering.billed()
    assert billed[LICENSE, "requests", TWO_HOURS_AGO.isoformat()] == Decimal("12.5")
    hours = [THIS_HOUR - timedelta(hours=n) for n in (3, 2, 1)]
    assert set(billed) == {(LICENSE, d, h.isoformat()) for d in DIMENSIONS for h in hours}
    assert sum(billed.values()) == Decimal("12.5")
    assert first.outcomes == {Outcome.METERED: 6} and first.oldest_unmetered is None
    assert (second.hours, metering.meter.calls) == (0, calls)
    assert metering.results(TWO_HOURS_AGO)[KEY, "requests"] == "metered"


def test_the_same_report_sent_twice_is_counted_once(metering: Metering) -> None:
    metering.subscribe("new-style", THIS_HOUR - timedelta(hours=3))

    first = metering.report("4", TWO_HOURS_AGO, usage_id="report-1")
    again = metering.report("4", TWO_HOURS_AGO, usage_id="report-1")
    metering.run()

    assert (first, again) == (Accepted(TWO_HOURS_AGO), Duplicate())
    assert metering.billed()[LICENSE, "requests", TWO_HOURS_AGO.isoformat()] == 4


def test_usage_of_an_hour_already_metered_counts_in_the_open_hour(metering: Metering) -> None:
    metering.subscribe("new-style", THIS_HOUR - timedelta(hours=3))
    metering.run()

    late = metering.report("3", TWO_HOURS_AGO)

    assert late == Accepted(hour_of(datetime.now(UTC)))
    # The metered hour's record is unchanged: no DuplicateRecord, nothing lost
    assert metering.billed()[LICENSE, "requests", TWO_HOURS_AGO.isoformat()] == 0


def test_usage_of_unknown_and_unsubscribed_customers_is_refused(metering: Metering) -> None:
    metering.subscribe("new-style", THIS_HOUR - timedelta(hours=3))
    (customer,) = [c for c in metering.stack.marketplace.customers if c.name == "new-style"]
    ended = build_notifications(customer, "unsubscribe", NOW - timedelta(hours=2))
    lifecycle.lambda_handler(
        sqs_event(*ended), metering.context, processor=_standin_processor(metering.stack)
    )

    unknown = metering.report("1", TWO_HOURS_AGO, key="LICENSE#l-ffffffffffffffffffffffffffffffff")
    unsubscribed = metering.report("1", TWO_HOURS_AGO)

    assert unknown == Rejected(UsageRejection.UNKNOWN_CUSTOMER)
    assert unsubscribed == Rejected(UsageRejection.NOT_SUBSCRIBED)


def test_a_crash_after_the_call_and_a_rerun_bill_each_record_once(metering: Metering) -> None:
    # Given usage, and a run that dies after Marketplace answered but before it stored that
    metering.subscribe("new-style", THIS_HOUR - timedelta(hours=3))
    metering.report("9", TWO_HOURS_AGO)
    record_results = metering.store.record_results

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the function timed out")

    metering.store.record_results = crash  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        metering.run()
    metering.store.record_results = record_results  # type: ignore[method-assign]

    # When the next run sends the same hours again
    rerun = metering.run()

    # Then Marketplace answered the identical records Success, and billed 9 once
    assert rerun.outcomes[Outcome.DUPLICATE] == 0 and rerun.outcomes[Outcome.METERED] == 6
    assert metering.billed()[LICENSE, "requests", TWO_HOURS_AGO.isoformat()] == 9
    assert sum(metering.billed().values()) == 9


def test_unprocessed_and_throttled_records_are_sent_again_until_answered(
    metering: Metering,
) -> None:
    metering.subscribe("new-style", THIS_HOUR - timedelta(hours=3))
    metering.report("2", TWO_HOURS_AGO)
    # Every record comes back unprocessed three times: the run gives up on them for now
    metering.stack.marketplace.metering.set_faults(unprocessed_next=6 * 3)

    first = metering.run()
    # Then the oldest hour's request is throttled (beyond botocore's retries); the others pass
    metering.stack.marketplace.throttle_next(1)
    throttled = metering.run()
    last = metering.run()

    assert first.outcomes == {Outcome.PENDING: 6} and first.oldest_unmetered is not None
    assert throttled.outcomes == {Outcome.PENDING: 2, Outcome.METERED: 4}
    assert last.outcomes == {Outcome.METERED: 2} and last.oldest_unmetered is None
    assert metering.billed()[LICENSE, "requests", TWO_HOURS_AGO.isoformat()] == 2


def test_marketplaces_refusals_are_stored_and_never_sent_again(metering: Metering) -> None:
    # Given a record Marketplace already holds with another quantity (DuplicateRecord), a
    # customer whose subscription Marketplace ended (CustomerNotSubscribed), and a
    # dimension the product does not have (the whole request refused: quarantined alone)
    metering.subscribe("new-style", THIS_HOUR - timedelta(hours=3))
    metering.subscribe("second-license", THIS_HOUR - timedelta(hours=3))
    marketplace = metering.stack.marketplace
    second = "arn:aws:license-manager::111122223333:license:l-fedcba9876543210fedcba9876543210"
    held = {
        "UsageRecords": [
            {
                "Timestamp": TWO_HOURS_AGO.timestamp(),
                "Dimension": "requests",
                "Quantity": 99,
                "LicenseArn": LICENSE,
                "CustomerAWSAccountId": "111122223333",
            }
        ]
    }
    assert marketplace.metering.batch_meter_usage(held)[0] is None
    metering.report("5", TWO_HOURS_AGO)
    marketplace.set_subscribed("second-license", False)
    marketplace.metering.dimensions = frozenset({"requests"})
    try:
        first = metering.run()
        again = metering.run()
    finally:
        marketplace.metering.dimensions = None

    results = metering.results(TWO_HOURS_AGO)
    assert results[KEY, "requests"] == "duplicate-record"
    assert results["LICENSE#l-fedcba9876543210fedcba9876543210", "requests"] == (
        "customer-not-subscribed"
    )
    assert results[KEY, "storage"] == "quarantined"
    assert first.oldest_unmetered is None and again.hours == 0
    assert marketplace.metering.billed()[LICENSE, "requests", TWO_HOURS_AGO.isoformat()] == 99
    assert (second, "requests", TWO_HOURS_AGO.isoformat()) not in marketplace.metering.billed()


def test_hours_too_old_to_send_are_recorded_as_expired_not_dropped(metering: Metering) -> None:
    # Given a buyer subscribed 26 hours ago, with usage 24 hours ago, and no run since
    metering.subscribe("new-style", THIS_HOUR - timedelta(hours=26))
    day_ago = THIS_HOUR - timedelta(hours=24)
    metering.report("6", day_ago)

    run = metering.run()

    # Then the four hours 23 hours old or more (Marketplace takes under 24) are expired, the
    # 22 younger ones metered; nothing of the expired hours reached Marketplace
    assert run.outcomes == {Outcome.EXPIRED: 4 * 2, Outcome.METERED: 22 * 2}
    assert not [h for _, _, h in metering.billed() if h <= day_ago.isoformat()]
    assert metering.results(day_ago)[KEY, "requests"] == "expired"


def test_a_dry_run_sends_nothing_and_says_what_it_would_send(metering: Metering) -> None:
    metering.subscribe("new-style", THIS_HOUR - timedelta(hours=3))
    metering.report("8", TWO_HOURS_AGO)

    dry = metering.run(dry_run=True)
    real = metering.run()

    sent = [r for request in dry.would_send for r in request["UsageRecords"]]
    assert len(sent) == 6 and {r["LicenseArn"] for r in sent} == {LICENSE}
    assert [
        r["Quantity"]
        for r in sent
        if r["Timestamp"] == TWO_HOURS_AGO and r["Dimension"] == "requests"
    ] == [8]
    assert real.outcomes == {Outcome.METERED: 6}


def test_a_legacy_customer_is_metered_by_identifier_and_product_code(metering: Metering) -> None:
    metering.subscribe("legacy", THIS_HOUR - timedelta(hours=3))
    assert metering.report("3", TWO_HOURS_AGO, key=LEGACY_KEY) == Accepted(TWO_HOURS_AGO)

    metering.run()

    legacy = f"{PRODUCT}/Ab1Cd2Ef3Gh"
    assert metering.billed()[legacy, "requests", TWO_HOURS_AGO.isoformat()] == 3
    assert all(who == legacy for who, _, _ in metering.billed())


# -- POST /usage: the real intake handler with API Gateway's IAM-authorized event ------------


def _post(metering: Metering, body: object, **settings: Any) -> tuple[int, dict[str, Any]]:
    from fulfillment.metering import intake
    from fulfillment.metering.settings import MeteringSettings
    from tests.handoff_events import usage_request

    response = intake.lambda_handler(
        usage_request(body),
        metering.context,
        store=metering.store,
        settings=MeteringSettings(
            metering.stack.customers_table, metering.usage_table, frozenset({PRODUCT}), DIMENSIONS
        ),
    )
    assert response["headers"]["Content-Type"] == "application/json"
    return response["statusCode"], json.loads(response["body"])


def _usage(usage_id: str, quantity: object, at: datetime, **who: str) -> dict[str, Any]:
    return {
        "usageId": usage_id,
        **(who or {"licenseArn": LICENSE}),
        "dimension": "requests",
        "quantity": quantity,
        "timestamp": at.isoformat(),
    }


def test_the_seller_posts_a_batch_and_learns_the_fate_of_each_report(metering: Metering) -> None:
    # Given a subscribed buyer, named by license, by its registration id, or not at all
    metering.subscribe("new-style", NOW - timedelta(hours=3))
    an_hour_ago = NOW - timedelta(hours=1)
    body = {
        "reports": [
            _usage("u-1", 0.1, an_hour_ago),
            _usage("u-2", 0.2, an_hour_ago, registrationId=metering.registration),
            _usage("u-1", 0.1, an_hour_ago),
            _usage("u-3", 1, an_hour_ago, licenseArn=LICENSE.replace("0123", "9999")),
            {**_usage("u-4", 1, an_hour_ago), "dimension": "gigabytes"},
            _usage("u-5", 1, NOW + timedelta(hours=1)),
            "not a report",
        ]
    }

    status, answer = _post(metering, body)

    hour = hour_of(an_hour_ago).isoformat()
    assert status == 200
    assert answer["results"] == [
        {"usageId": "u-1", "status": "accepted", "hour": hour},
        {"usageId": "u-2", "status": "accepted", "hour": hour},
        {"usageId": "u-1", "status": "duplicate"},
        {"usageId": "u-3", "status": "rejected", "reason": "UnknownCustomer"},
        {"usageId": "u-4", "status": "rejected", "reason": "UnknownDimension"},
        {"usageId": "u-5", "status": "rejected", "reason": "FutureTimestamp"},
        {"usageId": None, "status": "rejected", "reason": "Malformed"},
    ]
    # And the hour bills 0.3 exactly (decimals, never floats)
    metering.run(NOW)
    assert metering.billed()[LICENSE, "requests", hour] == Decimal("0.3")


@pytest.mark.parametrize(
    "body", ["not json", {"reports": []}, {"reports": [{}] * 101}, ["a list"], {"other": 1}]
)
def test_a_body_that_is_no_batch_is_refused_whole(metering: Metering, body: object) -> None:
    status, answer = _post(metering, body)

    assert status == 400
    assert "reports" in answer["message"] and answer["requestId"]


def test_storage_unavailable_answers_503_and_the_same_batch_again_counts_once(
    metering: Metering,
) -> None:
    metering.subscribe("new-style", NOW - timedelta(hours=3))
    an_hour_ago = NOW - timedelta(hours=1)
    body = {"reports": [_usage("r-1", 2, an_hour_ago), _usage("r-2", 3, an_hour_ago)]}
    add = metering.store.add
    calls: list[str] = []

    def fail_second(report: UsageReport, key: str, now: datetime) -> Any:
        calls.append(report.usage_id)
        if len(calls) == 2:
            from fulfillment.core.errors import StorageUnavailableError

            raise StorageUnavailableError("ProvisionedThroughputExceededException")
        return add(report, key, now)

    metering.store.add = fail_second  # type: ignore[method-assign]
    status, refused = _post(metering, body)
    metering.store.add = add  # type: ignore[method-assign]
    again_status, again = _post(metering, body)

    assert (status, again_status) == (503, 200)
    assert "same batch again" in refused["message"]
    assert [r["status"] for r in again["results"]] == ["duplicate", "accepted"]
    metering.run(NOW)
    assert metering.billed()[LICENSE, "requests", hour_of(an_hour_ago).isoformat()] == 5
