"""IAM-authorized events of the seller's hand-off API (REST proxy, payload 1.0) from the
fixture: ``GET /registrations/{id}`` and ``POST /usage``."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any
from urllib.parse import quote

from tests.events import fixture

CALLER_ARN = "arn:aws:sts::444455556666:assumed-role/seller-backend/session-1"


def registration_request(registration_id: str | None) -> dict[str, Any]:
    """The seller backend's signed GET for ``registration_id`` (None: no path parameter)."""
    event = copy.deepcopy(fixture("rest_iam_get_registration.json"))
    path = "/registrations/" + quote(registration_id or "", safe="")
    event["path"] = path
    event["requestContext"]["path"] = "/prod" + path
    event["requestContext"]["requestId"] = str(uuid.uuid4())
    event["pathParameters"] = None if registration_id is None else {"id": registration_id}
    return event


def usage_request(body: object) -> dict[str, Any]:
    """The seller backend's signed ``POST /usage`` with ``body`` (JSON-encoded unless text)."""
    event = copy.deepcopy(fixture("rest_iam_get_registration.json"))
    event["httpMethod"] = "POST"
    event["resource"] = event["path"] = event["requestContext"]["resourcePath"] = "/usage"
    event["requestContext"]["httpMethod"] = "POST"
    event["requestContext"]["path"] = "/prod/usage"
    event["requestContext"]["requestId"] = str(uuid.uuid4())
    event["pathParameters"] = None
    event["headers"]["Content-Type"] = "application/json"
    event["body"] = body if isinstance(body, str) else json.dumps(body)
    return event
