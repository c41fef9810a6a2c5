"""The hand-off handler against moto's DynamoDB, after a real registration through the API."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from fulfillment.customers.models import ContactDetails
from fulfillment.customers.store import DynamoDBCustomerStore
from fulfillment.handoff import handler as handoff
from fulfillment.registration import handler as registration_handler
from local.gateway import LambdaContext
from tests.events import form_post
from tests.handoff_events import CALLER_ARN, registration_request
from tests.integration.conftest import PRODUCT, FunctionClients, Handler, Stack
from tests.secrets_registry import TOKEN

NEW_STYLE_LICENSE = (
    "arn:aws:license-manager::111122223333:license:l-0123456789abcdef0123456789abcdef"
)


def _register(stack: Stack, customer: str, context: LambdaContext) -> str:
    token = stack.marketplace.issue_token(customer)
    response = registration_handler.lambda_handler(form_post(token), context)
    assert response["statusCode"] == 303, response.get("body")
    return parse_qs(urlsplit(response["headers"]["Location"]).query)["registration"][0]


def _get(
    handler: Handler, registration_id: str, context: LambdaContext
) -> tuple[int, dict[str, Any]]:
    response = handler(registration_request(registration_id), context)
    assert response["headers"]["Content-Type"] == "application/json"
    assert response["headers"]["Cache-Control"] == "no-store"
    return response["statusCode"], json.loads(response["body"])


def test_seller_backend_gets_the_customer_of_a_fresh_registration(
    stack: Stack, seller_handoff: Handler, lambda_context: LambdaContext, function_logs: io.StringIO
) -> None:
    # Given a buyer who just came through the fulfillment URL
    registration_id = _register(stack, "new-style", lambda_context)

    # When the seller's backend looks the id up
    status, body = _get(seller_handoff, registration_id, lambda_context)

    # Then it learns which Marketplace customer that is, and that sign-up is still open
    assert status == 200
    assert body["customer"] == {
        "productCode": PRODUCT,
        "customerAWSAccountId": "111122223333",
        "licenseArn": NEW_STYLE_LICENSE,
        "customerIdentifier": None,
        "agreementId": "agmt-1a2b3c4d5e6f7g8h9i0j1k2l3",
        "offerId": None,
        "freeTrial": None,
        "status": None,
        "signedUpAt": None,
    }
    assert body["registration"]["id"] == registration_id
    assert body["registration"]["signUpCompleted"] is False
    expires = datetime.fromisoformat(body["registration"]["expiresAt"])
    assert 3500 < (expires - datetime.now(UTC)).total_seconds() <= 3600
    # And the log says who asked
    assert CALLER_ARN in function_logs.getvalue()


def test_legacy_customer_carries_its_customer_identifier(
    stack: Stack, seller_handoff: Handler, lambda_context: LambdaContext
) -> None:
    registration_id = _register(stack, "legacy", lambda_context)

    status, body = _get(seller_handoff, registration_id, lambda_context)

    assert status == 200
    assert body["customer"]["customerIdentifier"] == "Ab1Cd2Ef3Gh"
    assert body["customer"]["licenseArn"] is None
    assert body["customer"]["agreementId"] is None


@pytest.mark.handles_secrets(TOKEN)
def test_completed_sign_up_shows_without_contact_details(
    stack: Stack, seller_handoff: Handler, lambda_context: LambdaContext, function_logs: io.StringIO
) -> None:
    # Given a registration whose buyer completed the built-in sign-up
    registration_id = _register(stack, "new-style", lambda_context)
    store = DynamoDBCustomerStore(
        stack.dynamodb, stack.customers_table, contacts_table_name=stack.contacts_table
    )
    session = store.get_session(registration_id)
    assert session is not None
    contact = ContactDetails("Example Corp", "Jane Buyer", "jane@buyer.example", "+1 555 0100")
    store.complete_signup(session, contact, datetime.now(UTC))

    # When the seller's backend looks it up
    status, body = _get(seller_handoff, registration_id, lambda_context)

    # Then it sees the sign-up done, and no personal data in the answer or the logs
    assert status == 200
    assert body["registration"]["signUpCompleted"] is True
    assert body["customer"]["signedUpAt"]
    for personal in ("Jane Buyer", "jane@buyer.example", "555 0100", "Example Corp"):
        assert personal not in json.dumps(body)
        assert personal not in function_logs.getvalue()


def test_expired_registration_still_in_the_table_is_not_found(
    stack: Stack, seller_handoff: Handler, lambda_context: LambdaContext
) -> None:
    # Given a session past its expiry that TTL has not deleted yet
    registration_id = _register(stack, "new-style", lambda_context)
    stack.dynamodb.update_item(
        TableName=stack.customers_table,
        Key={"pk": {"S": f"SESSION#{registration_id}"}, "sk": {"S": "SESSION"}},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"N": str(int(datetime.now(UTC).timestamp()) - 1)}},
    )

    status, body = _get(seller_handoff, registration_id, lambda_context)

    assert status == 404
    assert body["message"]


def test_storage_failure_answers_503(
    stack: Stack, clients: FunctionClients, lambda_context: LambdaContext
) -> None:
    # Given the function's store on a table DynamoDB does not have
    missing = DynamoDBCustomerStore(clients.dynamodb, "no-such-table")

    response = handoff.lambda_handler(registration_request("A" * 32), lambda_context, store=missing)

    assert response["statusCode"] == 503
    assert response["headers"]["Retry-After"] == "5"


def test_missing_table_name_is_500_and_logs_the_variable(
    stack: Stack,
    lambda_context: LambdaContext,
    monkeypatch: pytest.MonkeyPatch,
    function_logs: io.StringIO,
) -> None:
    # Given the deployed wiring (no store passed in) and no table name in its environment
    monkeypatch.delenv("CUSTOMERS_TABLE_NAME")

    response = handoff.lambda_handler(registration_request("A" * 32), lambda_context)

    assert response["statusCode"] == 500
    (line,) = [json.loads(x) for x in function_logs.getvalue().splitlines() if '"ERROR"' in x]
    assert (line["outcome"], line["variable"]) == ("ConfigurationFault", "CUSTOMERS_TABLE_NAME")
