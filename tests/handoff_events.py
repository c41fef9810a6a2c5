"""IAM-authorized ``GET /registrations/{id}`` events (REST proxy, payload 1.0) from the fixture."""

from __future__ import annotations

import copy
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
