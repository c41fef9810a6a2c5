"""The Marketplace stand-in's BatchMeterUsage through real boto3 (the real protocol, the
model's own parameter validation): the rules local/metering.py says it keeps."""

# ruff: noqa: F811
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError

from local.marketplace import MarketplaceStandIn
from tests.integration.test_marketplace_standin import (  # noqa: F401
    LICENSE,
    PRODUCT_CODE,
    SECOND_LICENSE,
    _client,
    _fresh_stand_in,
    server,
    stand_in,
)

ACCOUNT = "111122223333"
LEGACY = "Ab1Cd2Ef3Gh"


@pytest.fixture
def metering(server: Any) -> Any:
    return _client("meteringmarketplace", server.url)


def _hour(hours_ago: int = 1) -> datetime:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return now - timedelta(hours=hours_ago)


def _record(
    quantity: int | str = 5, *, at: datetime | None = None, **changes: Any
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "Timestamp": at or _hour(),
        "Dimension": "requests",
        "LicenseArn": LICENSE,
        "CustomerAWSAccountId": ACCOUNT,
    }
    record["QuantityAsDecimal" if isinstance(quantity, str) else "Quantity"] = quantity
    return {**record, **changes}


def _statuses(answer: dict[str, Any]) -> list[str]:
    return [result["Status"] for result in answer["Results"]]


def _refusal(metering: Any, records: list[dict[str, Any]], **request: Any) -> str:
    with pytest.raises(ClientError) as caught:
        metering.batch_meter_usage(UsageRecords=records, **request)
    return str(caught.value.response["Error"]["Code"])


def test_a_record_is_billed_once_and_the_identical_record_again_is_a_success(
    metering: Any, stand_in: MarketplaceStandIn
) -> None:
    first = metering.batch_meter_usage(UsageRecords=[_record(5)])
    again = metering.batch_meter_usage(UsageRecords=[_record(5)])
    # 5 and "5.0" are one quantity by value
    as_decimal = metering.batch_meter_usage(UsageRecords=[_record("5.0")])

    assert _statuses(first) == _statuses(again) == _statuses(as_decimal) == ["Success"]
    assert first["Results"][0]["MeteringRecordId"] == again["Results"][0]["MeteringRecordId"]
    assert stand_in.metering.billed_totals() == {(LICENSE, "requests"): Decimal(5)}


def test_another_quantity_for_the_same_customer_dimension_and_hour_is_a_duplicate_record(
    metering: Any, stand_in: MarketplaceStandIn
) -> None:
    metering.batch_meter_usage(UsageRecords=[_record(5)])

    answer = metering.batch_meter_usage(UsageRecords=[_record(7), _record(7, at=_hour(2))])

    assert _statuses(answer) == ["DuplicateRecord", "Success"]
    assert stand_in.metering.billed_totals() == {(LICENSE, "requests"): Decimal(12)}


def test_unknown_and_ended_customers_are_not_subscribed(
    metering: Any, stand_in: MarketplaceStandIn
) -> None:
    stand_in.set_subscribed("second-license", False)
    unknown = "arn:aws:license-manager::111122223333:license:l-99999999999999999999999999999999"

    answer = metering.batch_meter_usage(
        UsageRecords=[_record(LicenseArn=unknown), _record(LicenseArn=SECOND_LICENSE), _record()]
    )

    assert _statuses(answer) == ["CustomerNotSubscribed", "CustomerNotSubscribed", "Success"]
    assert "MeteringRecordId" not in answer["Results"][0]


def test_a_legacy_customer_is_metered_by_identifier_and_product_code(
    metering: Any, stand_in: MarketplaceStandIn
) -> None:
    legacy = {"Timestamp": _hour(), "Dimension": "requests", "Quantity": 3}

    answer = metering.batch_meter_usage(
        UsageRecords=[{**legacy, "CustomerIdentifier": LEGACY}], ProductCode=PRODUCT_CODE
    )
    without_product = _refusal(metering, [{**legacy, "CustomerIdentifier": LEGACY}])

    assert _statuses(answer) == ["Success"]
    assert without_product == "InvalidCustomerIdentifierException"
    assert stand_in.metering.billed_totals() == {(f"{PRODUCT_CODE}/{LEGACY}", "requests"): 3}


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        pytest.param({"Timestamp": _hour(24)}, "TimestampOutOfBoundsException", id="24 hours old"),
        pytest.param(
            {"Timestamp": datetime.now(UTC) + timedelta(minutes=5)},
            "TimestampOutOfBoundsException",
            id="future",
        ),
        pytest.param(
            {"LicenseArn": "arn:aws:iam::111122223333:role/x"},
            "InvalidLicenseException",
            id="not a license",
        ),
        pytest.param(
            {"UsageAllocations": [{"AllocatedUsageQuantity": 4}]},
            "InvalidUsageAllocationsException",
            id="allocations short of the quantity",
        ),
        pytest.param(
            {
                "UsageAllocations": [
                    {"AllocatedUsageQuantity": 5, "Tags": [{"Key": "team", "Value": "a|b"}]}
                ]
            },
            "InvalidTagException",
            id="tag value",
        ),
    ],
)
def test_one_bad_record_fails_the_whole_request_and_nothing_is_billed(
    metering: Any, stand_in: MarketplaceStandIn, bad: dict[str, Any], code: str
) -> None:
    assert _refusal(metering, [_record(LicenseArn=SECOND_LICENSE), _record(**bad)]) == code
    assert stand_in.metering.billed() == {}


def test_allocations_that_sum_to_the_quantity_are_billed(
    metering: Any, stand_in: MarketplaceStandIn
) -> None:
    allocations = [
        {"AllocatedUsageQuantity": 2, "Tags": [{"Key": "team", "Value": "search"}]},
        {"AllocatedUsageQuantity": 3, "Tags": [{"Key": "team", "Value": "ads"}]},
    ]

    answer = metering.batch_meter_usage(UsageRecords=[_record(5, UsageAllocations=allocations)])

    assert _statuses(answer) == ["Success"]


def test_a_dimension_the_product_does_not_have_fails_the_request(
    metering: Any, stand_in: MarketplaceStandIn
) -> None:
    stand_in.metering.dimensions = frozenset({"requests"})
    try:
        code = _refusal(metering, [_record(Dimension="gigabytes")])
    finally:
        stand_in.metering.dimensions = None

    assert code == "InvalidUsageDimensionException"


def test_last_months_usage_is_refused_after_six_in_the_morning_of_the_first(
    stand_in: MarketplaceStandIn,
) -> None:
    # In-process: the stand-in's clock is the caller's here
    last_hour_of_march = datetime(2027, 3, 31, 23, 0, tzinfo=UTC)
    record = {**_record(), "Timestamp": last_hour_of_march.timestamp()}

    at_five, _ = stand_in.metering.batch_meter_usage(
        {"UsageRecords": [record]}, now=datetime(2027, 4, 1, 5, 0, tzinfo=UTC)
    )
    at_six, _ = stand_in.metering.batch_meter_usage(
        {"UsageRecords": [record]}, now=datetime(2027, 4, 1, 6, 0, tzinfo=UTC)
    )
    too_many, _ = stand_in.metering.batch_meter_usage({"UsageRecords": [record] * 26})

    assert (at_five, at_six, too_many) == (
        None,
        "TimestampOutOfBoundsException",
        "ValidationException",
    )


def test_throttling_and_unprocessed_records_are_on_demand(
    metering: Any, stand_in: MarketplaceStandIn
) -> None:
    stand_in.throttle_next(1)
    throttled = _refusal(metering, [_record()])
    stand_in.metering.set_faults(unprocessed_next=1)

    answer = metering.batch_meter_usage(UsageRecords=[_record(), _record(at=_hour(2))])

    assert throttled == "ThrottlingException"
    assert len(answer["UnprocessedRecords"]) == 1 and _statuses(answer) == ["Success"]
    # The unprocessed record was not billed: sending it again bills it
    assert len(stand_in.metering.billed()) == 1
