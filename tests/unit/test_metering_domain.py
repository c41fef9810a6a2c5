"""Usage reports and metering records (pure): what is accepted, and what is sent."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fulfillment.metering.records import (
    HourUsage,
    MeterCustomer,
    MeterRecord,
    Outcome,
    batches,
    outcomes,
    records_for_hour,
    request,
)
from fulfillment.metering.usage import (
    Allocation,
    CustomerRef,
    InvalidReportError,
    UsageRejection,
    parse_report,
)

NOW = datetime(2027, 3, 10, 14, 20, tzinfo=UTC)
HOUR = datetime(2027, 3, 10, 12, 0, tzinfo=UTC)
DIMENSIONS = frozenset({"requests", "storage"})
LICENSE = "arn:aws:license-manager::111122223333:license:l-0123456789abcdef0123456789abcdef"
NEW = MeterCustomer("LICENSE#l-0123", "prod-a", "111122223333", LICENSE, None)
LEGACY = MeterCustomer("LEGACY#prod-a#Ab1", "prod-a", "444455556666", None, "Ab1")


def _report(**changes: Any) -> dict[str, Any]:
    return {
        "usageId": "u-1",
        "licenseArn": LICENSE,
        "dimension": "requests",
        "quantity": 3,
        "timestamp": "2027-03-10T12:15:00+00:00",
        **changes,
    }


def _reason(**changes: Any) -> UsageRejection:
    with pytest.raises(InvalidReportError) as caught:
        parse_report(_report(**changes), DIMENSIONS, NOW)
    return caught.value.reason


def test_a_report_names_its_customer_by_license_registration_or_legacy_identifier() -> None:
    by_license = parse_report(_report(), DIMENSIONS, NOW)
    by_registration = parse_report(
        _report(licenseArn=None, registrationId="reg-1"), DIMENSIONS, NOW
    )
    legacy = parse_report(
        _report(licenseArn=None, customerIdentifier="Ab1", productCode="prod-a"), DIMENSIONS, NOW
    )

    assert by_license.customer == CustomerRef(
        customer_key="LICENSE#l-0123456789abcdef0123456789abcdef"
    )
    assert by_registration.customer == CustomerRef(registration_id="reg-1")
    assert legacy.customer == CustomerRef(customer_key="LEGACY#prod-a#Ab1")
    assert by_license.quantity == 3 and by_license.at == datetime(2027, 3, 10, 12, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"dimension": "gigabytes"}, UsageRejection.UNKNOWN_DIMENSION),
        ({"quantity": -1}, UsageRejection.INVALID_QUANTITY),
        ({"quantity": "1.0000001"}, UsageRejection.INVALID_QUANTITY),
        ({"quantity": "10000000000"}, UsageRejection.INVALID_QUANTITY),
        ({"quantity": True}, UsageRejection.INVALID_QUANTITY),
        ({"quantity": "NaN"}, UsageRejection.INVALID_QUANTITY),
        ({"timestamp": "2027-03-10T12:15:00"}, UsageRejection.INVALID_TIMESTAMP),
        ({"timestamp": "2027-03-10T14:30:00+00:00"}, UsageRejection.FUTURE_TIMESTAMP),
        ({"timestamp": "2027-03-09T17:59:00+00:00"}, UsageRejection.TOO_OLD),
        ({"licenseArn": "arn:aws:iam::111122223333:role/x"}, UsageRejection.UNKNOWN_CUSTOMER),
        ({"registrationId": "reg-1"}, UsageRejection.MALFORMED),  # two customers named
        ({"usageId": ""}, UsageRejection.MALFORMED),
        ({"allocations": [{"tags": {"team": "a"}, "quantity": 2}]}, UsageRejection.INVALID_TAGS),
        ({"allocations": [{"tags": {"team": "a|b"}, "quantity": 3}]}, UsageRejection.INVALID_TAGS),
    ],
)
def test_bad_reports_are_refused_with_their_reason(
    changes: dict[str, Any], reason: UsageRejection
) -> None:
    assert _reason(**changes) == reason


def test_last_months_usage_is_refused_once_its_cut_off_nears() -> None:
    # 04:59 on the first: March is still sendable; 05:00: not any more (06:00 is AWS's limit)
    report = _report(timestamp="2027-03-31T23:30:00+00:00")
    parse_report(report, DIMENSIONS, datetime(2027, 4, 1, 4, 59, tzinfo=UTC))

    with pytest.raises(InvalidReportError) as caught:
        parse_report(report, DIMENSIONS, datetime(2027, 4, 1, 5, 0, tzinfo=UTC))

    assert caught.value.reason is UsageRejection.TOO_OLD


THREE = HourUsage(Decimal(3))


def _record(customer: MeterCustomer = NEW, usage: HourUsage = THREE) -> MeterRecord:
    return MeterRecord(customer, "requests", HOUR, usage)


def test_a_new_integration_is_metered_by_license_and_a_legacy_one_by_identifier() -> None:
    new = request([_record()])
    legacy = request([_record(LEGACY)])

    assert new == {
        "UsageRecords": [
            {
                "Timestamp": HOUR,
                "Dimension": "requests",
                "LicenseArn": LICENSE,
                "CustomerAWSAccountId": "111122223333",
                "Quantity": 3,
            }
        ]
    }
    assert legacy["ProductCode"] == "prod-a"
    assert legacy["UsageRecords"][0]["CustomerIdentifier"] == "Ab1"
    assert "LicenseArn" not in legacy["UsageRecords"][0]


def test_tagged_usage_is_allocated_and_the_untagged_rest_is_its_own_allocation() -> None:
    usage = HourUsage(Decimal("5.5"), (Allocation((("team", "ads"),), Decimal(2)),))

    (record,) = request([_record(usage=usage)])["UsageRecords"]

    assert record["QuantityAsDecimal"] == "5.5" and "Quantity" not in record
    assert record["UsageAllocations"] == [
        {"AllocatedUsageQuantityAsDecimal": "2", "Tags": [{"Key": "team", "Value": "ads"}]},
        {"AllocatedUsageQuantityAsDecimal": "3.5"},
    ]


def test_every_subscribed_customer_gets_every_dimension_zero_included() -> None:
    records = records_for_hour(
        HOUR,
        {(NEW.customer_key, "requests"): HourUsage(Decimal(4))},
        {NEW.customer_key: NEW, LEGACY.customer_key: LEGACY},
        [NEW.customer_key, LEGACY.customer_key],
        ["requests", "storage"],
    )

    assert [(r.customer.customer_key, r.dimension, r.usage.quantity) for r in records] == [
        ("LEGACY#prod-a#Ab1", "requests", 0),
        ("LEGACY#prod-a#Ab1", "storage", 0),
        ("LICENSE#l-0123", "requests", 4),
        ("LICENSE#l-0123", "storage", 0),
    ]


@given(st.integers(min_value=0, max_value=120), st.integers(min_value=0, max_value=60))
def test_batches_hold_at_most_25_records_of_one_product_and_identity_kind(
    licensed: int, legacy: int
) -> None:
    records = [
        MeterRecord(NEW._replace(customer_key=f"LICENSE#{n}"), "requests", HOUR, HourUsage())
        for n in range(licensed)
    ] + [
        MeterRecord(LEGACY._replace(customer_key=f"LEGACY#{n}"), "requests", HOUR, HourUsage())
        for n in range(legacy)
    ]

    found = batches(records)

    assert sum(len(b) for b in found) == licensed + legacy
    assert len(found) == -(-licensed // 25) + -(-legacy // 25)
    assert all(1 <= len(b) <= 25 and len({r.batch_key for r in b}) == 1 for b in found)


def test_an_answer_is_matched_to_its_records_and_silence_is_pending() -> None:
    first = _record()
    second = MeterRecord(NEW, "storage", HOUR, HourUsage())
    answer = {
        "Results": [
            {
                "UsageRecord": {"LicenseArn": LICENSE, "Dimension": "requests", "Timestamp": HOUR},
                "Status": "DuplicateRecord",
            }
        ],
        "UnprocessedRecords": [second.usage_record()],
    }

    assert outcomes([first, second], answer) == {
        first.key: (Outcome.DUPLICATE, None),
        second.key: (Outcome.PENDING, None),
    }
