"""Reads HTML form fields out of an API Gateway REST proxy event (payload format 1.0).

Shared by the fulfillment URL (the Marketplace token post) and the sign-up page. Bodies may
arrive plain or base64-encoded; only application/x-www-form-urlencoded is read, with
``parse_qs`` (a ``+`` in a percent-encoded value stays a ``+``).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from fulfillment.core.errors import OversizedFormError, UnreadableFormError

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
_ASCII = bytes(range(0x20, 0x7F))
# parse_qs keeps "%zz" (or a trailing "%") as it is; a browser never sends one.
_BAD_PERCENT_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")

Fields = dict[str, list[str]]


def query_fields(event: Mapping[str, Any]) -> Fields:
    """The query string's fields, every value of a repeated one kept in order."""
    multi = event.get("multiValueQueryStringParameters") or {}
    if multi:
        return {name: list(values or []) for name, values in multi.items()}
    single = event.get("queryStringParameters") or {}
    return {name: [value] for name, value in single.items() if value is not None}


def form_fields(event: Mapping[str, Any], *, max_body_bytes: int, max_fields: int) -> Fields:
    """The body's form fields; {} when there is no body or it is not a form.

    Raises OversizedFormError above ``max_body_bytes`` and UnreadableFormError for non-ASCII
    bytes, bad percent-encoding, invalid base64 or more than ``max_fields`` fields.
    """
    body = event.get("body")
    if not body:
        return {}
    media_type, charset = _content_type(event)
    if media_type != FORM_CONTENT_TYPE:
        return {}
    raw = _body_bytes(str(body), bool(event.get("isBase64Encoded")), max_body_bytes)
    if len(raw) > max_body_bytes:
        raise OversizedFormError("request body too large")
    if _BAD_PERCENT_ESCAPE.search(raw):
        raise UnreadableFormError("invalid percent-escape in the form body")
    try:
        return parse_qs(
            raw.decode("ascii"),
            keep_blank_values=True,
            encoding=charset,
            errors="strict",
            max_num_fields=max_fields,
        )
    except (UnicodeDecodeError, ValueError):
        raise UnreadableFormError("unreadable form body") from None


def _body_bytes(body: str, base64_encoded: bool, max_body_bytes: int) -> bytes:
    # Checked before decoding: base64 is 4/3 of the bytes, so twice the limit is never legal.
    if len(body) > 2 * max_body_bytes:
        raise OversizedFormError("request body too large")
    if not base64_encoded:
        try:
            return body.encode("utf-8", errors="surrogateescape")
        except UnicodeEncodeError:
            # A lone surrogate outside surrogateescape's range ("\ud800" in the event's JSON).
            raise UnreadableFormError("body is not text") from None
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise UnreadableFormError("body is not valid base64") from None


def _content_type(event: Mapping[str, Any]) -> tuple[str, str]:
    headers = event.get("headers") or {}
    value = next((v for k, v in headers.items() if k.lower() == "content-type" and v), "")
    media_type, _, params = value.partition(";")
    charset = "utf-8"
    for param in params.split(";"):
        key, _, param_value = param.partition("=")
        if key.strip().lower() == "charset" and param_value.strip():
            charset = param_value.strip().strip('"').lower()
    # A form body is percent-encoded ASCII: a charset that does not read ASCII as ASCII
    # (unknown labels, UTF-16, EBCDIC, and codecs that decode no text at all, such as rot13
    # or base64) is taken as UTF-8, as browsers do for UTF-16 forms.
    try:
        ascii_compatible = _ASCII.decode(charset) == _ASCII.decode("ascii")
    except (LookupError, ValueError):
        ascii_compatible = False
    if not ascii_compatible:
        charset = "utf-8"
    return media_type.strip().lower(), charset
