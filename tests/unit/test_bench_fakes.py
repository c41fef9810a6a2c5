"""The benchmark's fake AWS answers like the real services, so its figures can be trusted:
real botocore clients parse its answers, and the call counts come from botocore's events."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from bench.coldstart import Runs
from bench.fakes import LICENSE_ARN, PRODUCT_CODE, CallClock, FakeAws

IDEMPOTENCY_PUT: dict[str, Any] = {
    "TableName": "idempotency",
    "ConditionExpression": "attribute_not_exists(#id) OR #expiry < :now",
    "ExpressionAttributeNames": {
        "#id": "id",
        "#expiry": "expiration",
        "#in_progress_expiry": "in_progress_expiration",
        "#status": "status",
    },
    "ExpressionAttributeValues": {
        ":now": {"N": "1000"},
        ":now_in_millis": {"N": "1000000"},
        ":inprogress": {"S": "INPROGRESS"},
    },
    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
}


@pytest.fixture
def wired() -> tuple[Any, Any, FakeAws, CallClock]:
    # A boto3 session, as fulfillment.aws builds: clients created after install are answered.
    session = boto3.session.Session(
        region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    fake, clock = FakeAws(), CallClock()
    fake.install(session)
    clock.install(session)
    return (
        session.client("dynamodb"),
        session.client("meteringmarketplace"),
        fake,
        clock,
    )


def _record(status: str, expiry: int) -> dict[str, Any]:
    return {"id": {"S": "key"}, "status": {"S": status}, "expiration": {"N": str(expiry)}}


def test_a_live_idempotency_record_comes_back_with_the_failed_put(wired: Any) -> None:
    dynamodb, _, _, clock = wired
    # Given a completed record that has not expired
    dynamodb.put_item(Item=_record("COMPLETED", 5000), **IDEMPOTENCY_PUT)
    # When the same key is put again with ReturnValuesOnConditionCheckFailure
    with pytest.raises(ClientError) as raised:
        dynamodb.put_item(Item=_record("INPROGRESS", 6000), **IDEMPOTENCY_PUT)
    # Then DynamoDB's answer carries the existing item, as Powertools expects
    assert raised.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert raised.value.response["Item"]["status"] == {"S": "COMPLETED"}
    assert clock.operations == {"PutItem": 2}


def test_an_expired_record_is_replaced(wired: Any) -> None:
    dynamodb, _, _, _ = wired
    dynamodb.put_item(Item=_record("COMPLETED", 10), **IDEMPOTENCY_PUT)
    dynamodb.put_item(Item=_record("INPROGRESS", 6000), **IDEMPOTENCY_PUT)
    item = dynamodb.get_item(TableName="idempotency", Key={"id": {"S": "key"}})["Item"]
    assert item["status"] == {"S": "INPROGRESS"}


def test_update_sets_named_attributes_and_returns_old_values(wired: Any) -> None:
    dynamodb, _, _, _ = wired
    key = {"pk": {"S": "c"}, "sk": {"S": "CUSTOMER"}}
    update = {
        "TableName": "customers",
        "Key": key,
        "UpdateExpression": "SET #status = :s, product_code = :p ADD registration_count :one",
        "ExpressionAttributeNames": {"#status": "status"},
        "ExpressionAttributeValues": {":s": {"S": "a"}, ":p": {"S": "x"}, ":one": {"N": "1"}},
        "ReturnValues": "UPDATED_OLD",
    }
    assert "Attributes" not in dynamodb.update_item(**update)
    again = dynamodb.update_item(**update)
    assert again["Attributes"]["status"] == {"S": "a"}


def test_resolve_customer_answers_new_style_or_the_modelled_error(wired: Any) -> None:
    _, metering, fake, clock = wired
    answer = metering.resolve_customer(RegistrationToken="t")
    assert answer["ProductCode"] == PRODUCT_CODE
    assert answer["LicenseArn"] == LICENSE_ARN
    assert answer["Metadata"]["AgreementId"]
    fake.resolve = "expired"
    with pytest.raises(ClientError) as raised:
        metering.resolve_customer(RegistrationToken="t")
    assert raised.value.response["Error"]["Code"] == "ExpiredTokenException"
    # Calls are counted once each, and time inside them is accounted
    assert clock.operations == {"ResolveCustomer": 2}
    assert clock.seconds > 0


def test_attempts_show_botocore_retries(wired: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _, metering, fake, clock = wired
    monkeypatch.setattr("time.sleep", lambda _: None)  # botocore's backoff between attempts
    fake.resolve = "throttled"
    with pytest.raises(ClientError):
        metering.resolve_customer(RegistrationToken="t")
    assert clock.operations == {"ResolveCustomer": 1}
    assert fake.attempts["ResolveCustomer"] > 1


def test_ratio_is_of_the_medians() -> None:
    runs = Runs(
        floor=[{"seconds": s} for s in (1.0, 2.0, 9.0)],
        handler=[{"seconds": s} for s in (2.0, 3.0, 30.0)],
    )
    assert runs.ratio == pytest.approx(1.5)
