"""Builds the hand-off Location: the configured URL plus the registration id, nothing else
(and, on the built-in sign-up page's Continue link of a deferred registration, until when it
may still be being recorded)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REGISTRATION_PARAMETER = "registration"
# Only on the built-in sign-up page's link from the 202 page: the registration's session
# expiry (epoch seconds). Until then a sign-up link whose session or customer is not stored
# yet is "still finishing", not "expired" (docs/signup.md). It tells only that page which of
# its own answers to show, so a changed value changes nothing but what its sender sees.
DEFERRED_PARAMETER = "deferred"
SIGNUP_RESOURCE = "/signup"
# A stage name or a custom domain's base path: non-empty segments of unreserved characters.
_PATH_PREFIX = re.compile(r"(/[A-Za-z0-9._~+-]+)*")


def registration_location(
    base_url: str, session_id: str, *, deferred_until: int | None = None
) -> str:
    """``base_url`` with ``registration=<session_id>`` added to whatever query it already has
    (and ``deferred=<deferred_until>``, when given)."""
    parts = urlsplit(base_url)
    ours = {REGISTRATION_PARAMETER} | ({DEFERRED_PARAMETER} if deferred_until else set())
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ours]
    query.append((REGISTRATION_PARAMETER, session_id))
    if deferred_until is not None:
        query.append((DEFERRED_PARAMETER, str(deferred_until)))
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", urlencode(query), ""))


def builtin_signup_path(event: Mapping[str, Any]) -> str:
    """The path of the built-in sign-up page as the buyer's browser sees this API.

    ``requestContext.path`` carries the stage (``/prod/``) on execute-api hosts and the
    base path on custom domains, so the page is found behind either.
    """
    seen = str((event.get("requestContext") or {}).get("path") or "")
    routed = str(event.get("path") or "")
    prefix = seen[: len(seen) - len(routed)] if routed and seen.endswith(routed) else ""
    prefix = prefix.rstrip("/")
    if not _PATH_PREFIX.fullmatch(prefix):
        # "//host", "/\\host" or a tab would send the browser to another site: only plain
        # stage and base-path segments are kept.
        prefix = ""
    return prefix + SIGNUP_RESOURCE
