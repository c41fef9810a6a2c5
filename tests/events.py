"""Real-shaped API Gateway REST proxy events (payload 1.0), built from the JSON fixtures."""

from __future__ import annotations

import base64
import copy
import json
import uuid
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

FIXTURES = Path(__file__).parent / "fixtures" / "events"
TOKEN_FIELD = "x-amzn-marketplace-token"


@cache
def fixture(name: str) -> dict[str, Any]:
    """A captured event from ``tests/fixtures/events/`` (shared: copy before changing it)."""
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return loaded


def rest_event(
    *,
    method: str = "POST",
    body: str | bytes | None = None,
    content_type: str | None = "application/x-www-form-urlencoded",
    query: dict[str, list[str]] | None = None,
    base64_body: bool = False,
    request_id: str | None = None,
) -> dict[str, Any]:
    """The fixture event with the method, body, content type and query string replaced."""
    event = copy.deepcopy(fixture("rest_form_post.json"))
    event["httpMethod"] = event["requestContext"]["httpMethod"] = method
    event["requestContext"]["requestId"] = request_id or str(uuid.uuid4())
    for headers in (event["headers"], event["multiValueHeaders"]):
        headers.pop("content-type", None)
    if content_type is not None:
        event["headers"]["content-type"] = content_type
        event["multiValueHeaders"]["content-type"] = [content_type]
    raw = body.encode() if isinstance(body, str) else body
    if raw is None or raw == b"":
        event["body"] = None
    elif base64_body:
        event["body"] = base64.b64encode(raw).decode()
    else:
        event["body"] = raw.decode("utf-8", errors="surrogateescape")
    event["isBase64Encoded"] = bool(base64_body and raw)
    if query:
        event["multiValueQueryStringParameters"] = {k: list(v) for k, v in query.items()}
        event["queryStringParameters"] = {k: v[-1] for k, v in query.items()}
    else:
        event["multiValueQueryStringParameters"] = event["queryStringParameters"] = None
    return event


def form_post(token: str, *, free_trial: bool = False, **kwargs: Any) -> dict[str, Any]:
    """A browser's form POST of ``token``, as AWS Marketplace sends it."""
    fields = [(TOKEN_FIELD, token)]
    if free_trial:
        fields.append(("x-amzn-marketplace-offer-type", "free-trial"))
    return rest_event(body=urlencode(fields), **kwargs)
