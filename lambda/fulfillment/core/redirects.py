"""Builds the hand-off Location: the configured URL plus the registration id, nothing else."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REGISTRATION_PARAMETER = "registration"
SIGNUP_RESOURCE = "/signup"
# A stage name or a custom domain's base path: non-empty segments of unreserved characters.
_PATH_PREFIX = re.compile(r"(/[A-Za-z0-9._~+-]+)*")


def registration_location(base_url: str, session_id: str) -> str:
    """``base_url`` with ``registration=<session_id>`` added to whatever query it already has."""
    parts = urlsplit(base_url)
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k != REGISTRATION_PARAMETER
    ]
    query.append((REGISTRATION_PARAMETER, session_id))
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
