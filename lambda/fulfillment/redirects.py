"""Builds the hand-off Location: the configured URL plus the registration id, nothing else."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REGISTRATION_PARAMETER = "registration"


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
