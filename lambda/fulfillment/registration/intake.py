"""Reads the buyer's submission out of an API Gateway REST proxy event (payload format 1.0).

Only the registration token and the free-trial marker are taken; every other field the
browser posts is ignored, so nothing a buyer sends can reach the customer record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fulfillment.core.errors import OversizedFormError, UnreadableFormError
from fulfillment.core.forms import form_fields, query_fields
from fulfillment.registration.errors import (
    MalformedTokenError,
    MissingTokenError,
    OversizedRequestError,
)
from fulfillment.registration.models import Submission

TOKEN_FIELD = "x-amzn-marketplace-token"
OFFER_TYPE_FIELD = "x-amzn-marketplace-offer-type"
FREE_TRIAL = "free-trial"

MAX_TOKEN_BYTES = 16 * 1024
# A Marketplace form post is the token plus a short field or two; anything far larger is not one.
MAX_BODY_BYTES = 4 * MAX_TOKEN_BYTES
_MAX_FORM_FIELDS = 32


def read_submission(event: Mapping[str, Any]) -> Submission | None:
    """The submission in ``event``, or None when it carries no token field at all."""
    fields = query_fields(event)
    for name, values in _form_fields(event).items():
        fields.setdefault(name, []).extend(values)
    if TOKEN_FIELD not in fields:
        return None
    token = _single_token(fields[TOKEN_FIELD])
    free_trial = FREE_TRIAL in fields.get(OFFER_TYPE_FIELD, ())
    return Submission(token=token, free_trial=free_trial)


def _single_token(values: list[str]) -> str:
    distinct = set(values)
    if len(distinct) != 1:
        # The same field twice with different values: no way to tell which one Marketplace sent.
        raise MalformedTokenError("conflicting registration tokens")
    token = distinct.pop()
    if not token.strip():
        raise MissingTokenError("blank registration token")
    # ASCII first: a lone surrogate ("\ud800" in the event's JSON) has no UTF-8 length.
    if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        raise MalformedTokenError("registration token has whitespace or non-printable characters")
    if len(token) > MAX_TOKEN_BYTES:
        raise MalformedTokenError("registration token too long")
    return token


def _form_fields(event: Mapping[str, Any]) -> dict[str, list[str]]:
    try:
        return form_fields(event, max_body_bytes=MAX_BODY_BYTES, max_fields=_MAX_FORM_FIELDS)
    except OversizedFormError:
        raise OversizedRequestError("request body too large") from None
    except UnreadableFormError:
        raise MalformedTokenError("unreadable form body") from None
