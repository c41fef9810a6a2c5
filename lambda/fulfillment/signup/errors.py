"""The sign-up page's own error (the session errors it shares live in customers/errors.py)."""

from __future__ import annotations

from fulfillment.core.errors import FulfillmentError


class CsrfTokenError(FulfillmentError):
    """The sign-up form came back without the token bound to its registration id."""
