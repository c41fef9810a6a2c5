"""Real-shaped DynamoDB stream and SQS events for the registration events publisher."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from tests.events import fixture

# The records of dynamodb_stream_customers.json, in order: one customer's history.
STREAM_RECORDS = (
    "first_registration",
    "returning_registration",
    "signed_up",
    "status_only",
    "removed",
)
LICENSE_ARN = "arn:aws:license-manager::111122223333:license:l-0123456789abcdef0123456789abcdef"
CUSTOMER_PK = "LICENSE#l-0123456789abcdef0123456789abcdef"


def stream_record(name: str) -> dict[str, Any]:
    """One record of the fixture, by its name in STREAM_RECORDS (a fresh copy)."""
    records = fixture("dynamodb_stream_customers.json")["Records"]
    return copy.deepcopy(records[STREAM_RECORDS.index(name)])


def stream_event(*names: str) -> dict[str, Any]:
    """A Lambda DynamoDB stream event holding the named records."""
    return {"Records": [stream_record(name) for name in names]}


def sqs_event(*bodies: str) -> dict[str, Any]:
    """A Lambda SQS event with one message per body (fresh message ids)."""
    (template,) = fixture("sqs_publish_retry.json")["Records"]
    records = []
    for body in bodies:
        record = copy.deepcopy(template)
        record["messageId"] = str(uuid.uuid4())
        record["body"] = body
        records.append(record)
    return {"Records": records}
