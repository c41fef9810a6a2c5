"""Registration ids and CSRF tokens as issued, their shape, and pseudonyms for logs."""

from __future__ import annotations

import hashlib
import re
import secrets

# 24 random bytes: 192 bits, above the 128 the hand-off needs to be unguessable.
SESSION_ID_BYTES = 24
# Registration ids are secrets.token_urlsafe(24) (32 characters); anything outside this
# shape cannot be one, so it is refused before any AWS call. A pattern source, compiled on
# first use (re caches it): the fulfillment URL issues ids but never checks one.
_REGISTRATION_ID = r"[A-Za-z0-9_-]{16,64}"


def new_session_id() -> str:
    return secrets.token_urlsafe(SESSION_ID_BYTES)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(SESSION_ID_BYTES)


def is_registration_id(value: str) -> bool:
    """Whether ``value`` has the shape of an id this project issued."""
    return re.fullmatch(_REGISTRATION_ID, value) is not None


def pseudonym(value: str) -> str:
    """A stable, non-reversible reference for logs in place of a customer identifier."""
    return hashlib.sha256(value.encode()).hexdigest()[:16]
