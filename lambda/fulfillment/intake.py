"""Reads the buyer's submission out of an API Gateway REST proxy event (payload format 1.0).

Only the registration token and the free-trial marker are taken; every other field the
browser posts is ignored, so nothing a buyer sends can reach the customer record.
"""

from __future__ import annotations

import base64
import binascii
import codecs
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs

from fulfillment.errors import MalformedTokenError, MissingTokenError, OversizedRequestError
from fulfillment.models import Submission

TOKEN_FIELD = "x-amzn-marketplace-token"
OFFER_TYPE_FIELD = "x-amzn-marketplace-offer-type"
FREE_TRIAL = "free-trial"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"

MAX_TOKEN_BYTES = 16 * 1024
# A Marketplace form post is the token plus a short field or two; anything far larger is not one.
MAX_BODY_BYTES = 4 * MAX_TOKEN_BYTES
_MAX_FORM_FIELDS = 32


def read_submission(event: Mapping[str, Any]) -> Submission | None:
    """The submission in ``event``, or None when it carries no token field at all."""
    fields: dict[str, list[str]] = {}
    for name, values in _query_fields(event):
        fields.setdefault(name, []).extend(values)
    for name, values in _form_fields(event).items():
        fields.setdefault(name, []).extend(values)
    if TOKEN_FIELD not in fields:
        return None
    token = _single_token(fields[TOKEN_FIELD])
    free_trial = FREE_TRIAL in fields.get(OFFER_TYPE_FIELD, ())
    return Submission(token=token, free_trial=free_trial)


def require_submission(event: Mapping[str, Any]) -> Submission:
    """Like read_submission, but a request without a token is an error."""
    submission = read_submission(event)
    if submission is None:
        raise MissingTokenError("no registration token in the request")
    return submission


def _single_token(values: list[str]) -> str:
    distinct = set(values)
    if len(distinct) != 1:
        # The same field twice with different values: no way to tell which one Marketplace sent.
        raise MalformedTokenError("conflicting registration tokens")
    token = distinct.pop()
    if not token.strip():
        raise MissingTokenError("blank registration token")
    if len(token.encode()) > MAX_TOKEN_BYTES:
        raise MalformedTokenError("registration token too long")
    if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        raise MalformedTokenError("registration token has whitespace or non-printable characters")
    return token


def _query_fields(event: Mapping[str, Any]) -> Iterable[tuple[str, list[str]]]:
    multi = event.get("multiValueQueryStringParameters") or {}
    single = event.get("queryStringParameters") or {}
    if multi:
        return [(name, list(values or [])) for name, values in multi.items()]
    return [(name, [value]) for name, value in single.items() if value is not None]


def _form_fields(event: Mapping[str, Any]) -> dict[str, list[str]]:
    body = event.get("body")
    if not body:
        return {}
    media_type, charset = _content_type(event)
    if media_type != FORM_CONTENT_TYPE:
        return {}
    raw = _body_bytes(body, bool(event.get("isBase64Encoded")))
    if len(raw) > MAX_BODY_BYTES:
        raise OversizedRequestError("request body too large")
    try:
        return parse_qs(
            raw.decode("ascii"),
            keep_blank_values=True,
            encoding=charset,
            errors="strict",
            max_num_fields=_MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        # Not a well-formed form body: non-ASCII bytes, bad percent-encoding, too many fields.
        raise MalformedTokenError("unreadable form body") from None


def _body_bytes(body: str, base64_encoded: bool) -> bytes:
    if len(body) > 2 * MAX_BODY_BYTES:
        raise OversizedRequestError("request body too large")
    if not base64_encoded:
        return body.encode("utf-8", errors="surrogateescape")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedTokenError("body is not valid base64") from None


def _content_type(event: Mapping[str, Any]) -> tuple[str, str]:
    headers = event.get("headers") or {}
    value = next((v for k, v in headers.items() if k.lower() == "content-type" and v), "")
    media_type, _, params = value.partition(";")
    charset = "utf-8"
    for param in params.split(";"):
        key, _, param_value = param.partition("=")
        if key.strip().lower() == "charset" and param_value.strip():
            charset = param_value.strip().strip('"').lower()
    try:
        codecs.lookup(charset)
    except LookupError:
        charset = "utf-8"  # a form body is percent-encoded ASCII; an unknown label changes little
    return media_type.strip().lower(), charset
