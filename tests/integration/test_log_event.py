"""No entry point logs its event, even when ``POWERTOOLS_LOGGER_LOG_EVENT=true`` is set.

Powertools reads that variable when ``inject_lambda_context`` decorates the handler, so each
handler is imported and invoked in a fresh interpreter with the variable set (as a new Lambda
container would), against this stack's moto server and the Marketplace stand-in.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest

from fulfillment import contract
from fulfillment.customers.models import ParkedRegistration
from infra.schema import create_table_request
from tests import lifecycle_events, registration_events
from tests.events import form_post, rest_event
from tests.fresh_process import run_fresh
from tests.handoff_events import registration_request, usage_request
from tests.integration.conftest import Stack
from tests.secrets_registry import encoded_forms

# A customer account no fixture, context or stand-in uses, so any log line holding it comes
# from the event.
ACCOUNT = "804213579246"
LICENSE_ARN = registration_events.LICENSE_ARN.replace(lifecycle_events.ACCOUNT, ACCOUNT)
RETURNED = "handler returned"

_INVOKE = f"""
import json, sys, importlib
from local.gateway import LambdaContext
module, _, name = sys.argv[1].rpartition(".")
handler = getattr(importlib.import_module(module), name)
context = LambdaContext(function_name="fulfillment-log-event", memory_limit_in_mb=512,
                        timeout_seconds=20, log_stream_name="2026/12/03/[$LATEST]0123")
handler(json.loads(sys.argv[2]), context)
print({RETURNED!r})
"""


def _with_account(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` with the fixtures' customer account made ACCOUNT."""
    changed: dict[str, Any] = json.loads(
        json.dumps(event).replace(lifecycle_events.ACCOUNT, ACCOUNT)
    )
    return changed


def _fulfillment(stack: Stack) -> tuple[dict[str, Any], list[str]]:
    token = stack.marketplace.issue_token("new-style")
    return form_post(token), [token]


def _signup(stack: Stack) -> tuple[dict[str, Any], list[str]]:
    email = f"log-event-{uuid.uuid4().hex[:8]}@widgets.example"
    contact = {"company": "Log Event Widgets", "contact_name": "Ada Example", "email": email}
    fields = {"registration": "r" * 43, "csrf_token": "c" * 43, **contact}
    event = rest_event(body=urlencode(fields))
    event["resource"] = event["path"] = event["requestContext"]["resourcePath"] = "/signup"
    event["requestContext"]["path"] = "/prod/signup"
    return event, [email]


def _handoff(stack: Stack) -> tuple[dict[str, Any], list[str]]:
    # The caller's ARN is logged on purpose (who fetched what); its credentials never are.
    event = registration_request("r" * 43)
    session_token = event["headers"]["X-Amz-Security-Token"]
    signature = event["headers"]["Authorization"].rpartition("Signature=")[2]
    return event, [session_token, signature]


def _publisher(stack: Stack) -> tuple[dict[str, Any], list[str]]:
    return _with_account(registration_events.stream_event("first_registration")), [ACCOUNT]


def _lifecycle(stack: Stack) -> tuple[dict[str, Any], list[str]]:
    notification = lifecycle_events.event("license_updated_manufacturer")
    return _with_account(lifecycle_events.sqs_event(notification)), [ACCOUNT, LICENSE_ARN]


def _recovery(stack: Stack) -> tuple[dict[str, Any], list[str]]:
    parked = ParkedRegistration(
        registration_id=uuid.uuid4().hex + uuid.uuid4().hex[:11],
        product_code=lifecycle_events.PRODUCT,
        customer_aws_account_id=ACCOUNT,
        license_arn=LICENSE_ARN,
        customer_identifier=None,
        agreement_id=lifecycle_events.AGREEMENT,
        session_expires_at=2_000_000_000,
        csrf_token="c" * 43,
        registered_at="2026-12-03T12:00:00.000000+00:00",
        request_id=str(uuid.uuid4()),
    )
    return registration_events.sqs_event(parked.to_message()), [ACCOUNT, LICENSE_ARN]


USAGE_TABLE = "usage-log-event"


def _metering(stack: Stack) -> tuple[dict[str, Any], list[str]]:
    # The schedule's event: nothing secret in it; the run must still not log it.
    # Created already for another entry point's test, or not yet
    with contextlib.suppress(stack.dynamodb.exceptions.ResourceInUseException):
        stack.dynamodb.create_table(**create_table_request(contract.USAGE, USAGE_TABLE))
    event = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": "2026-12-03T13:05:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:events:us-east-1:{ACCOUNT}:rule/metering-{ACCOUNT}"],
        "detail": {},
    }
    return event, [ACCOUNT]


def _usage(stack: Stack) -> tuple[dict[str, Any], list[str]]:
    # The customer's license, and the caller's credentials, only the event carries.
    _metering(stack)  # the usage table
    report = {
        "usageId": "log-event-1",
        "licenseArn": LICENSE_ARN,
        "dimension": "requests",
        "quantity": 1,
        "timestamp": "2026-12-03T12:00:00+00:00",
    }
    event = usage_request({"reports": [report]})
    session_token = event["headers"]["X-Amz-Security-Token"]
    return event, [LICENSE_ARN, session_token]


EVENTS: dict[str, Callable[[Stack], tuple[dict[str, Any], list[str]]]] = {
    contract.FULFILLMENT_HANDLER: _fulfillment,
    contract.SIGNUP_HANDLER: _signup,
    contract.HANDOFF_HANDLER: _handoff,
    contract.PUBLISHER_HANDLER: _publisher,
    contract.LIFECYCLE_HANDLER: _lifecycle,
    contract.RECOVERY_HANDLER: _recovery,
    contract.METERING_HANDLER: _metering,
    contract.USAGE_HANDLER: _usage,
}


def test_every_entry_point_has_an_event_here() -> None:
    handlers = {value for name, value in vars(contract).items() if name.endswith("_HANDLER")}
    assert set(EVENTS) == handlers


@pytest.mark.parametrize("handler", list(EVENTS))
def test_no_entry_point_logs_its_event_when_powertools_is_told_to(
    stack: Stack, handler: str
) -> None:
    # Given a real-shaped event for this handler holding values only the event carries
    event, secrets = EVENTS[handler](stack)
    forms = [form for secret in secrets for form in encoded_forms(secret).values()]
    assert all(
        any(form in json.dumps(event) for form in encoded_forms(secret).values())
        for secret in secrets
    )
    moto_url = os.environ["AWS_ENDPOINT_URL_SQS"]
    retry_queue = stack.sqs.create_queue(QueueName=f"retry-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    # When a fresh container runs it with POWERTOOLS_LOGGER_LOG_EVENT=true, logging at DEBUG
    done = run_fresh(
        _INVOKE,
        handler,
        json.dumps(event),
        POWERTOOLS_LOGGER_LOG_EVENT="true",
        POWERTOOLS_LOG_LEVEL="DEBUG",
        AWS_ENDPOINT_URL_EVENTBRIDGE=moto_url,
        AWS_ENDPOINT_URL_MARKETPLACE_ENTITLEMENT_SERVICE=os.environ[
            "AWS_ENDPOINT_URL_MARKETPLACE_METERING"
        ],
        AWS_ENDPOINT_URL_MARKETPLACE_AGREEMENT=os.environ["AWS_ENDPOINT_URL_MARKETPLACE_METERING"],
        EVENT_BUS_NAME="default",
        PUBLISH_RETRY_QUEUE_URL=retry_queue,
        USAGE_TABLE_NAME=USAGE_TABLE,
        METERING_DIMENSIONS="requests",
    )
    # Then it ran to the end and none of those values is in its output
    output = done.stdout + done.stderr
    assert RETURNED in done.stdout, output[-2000:]
    assert [form for form in forms if form in output] == []
