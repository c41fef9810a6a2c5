"""What can be wrong with a registration id or its sign-up session (sign-up and hand-off)."""

from __future__ import annotations

from fulfillment.core.errors import FulfillmentError


class MalformedRegistrationIdError(FulfillmentError):
    """The registration id is missing or cannot be one we issued; no AWS call is made."""


class SignupSessionUnavailableError(FulfillmentError):
    """The registration id is unknown or its sign-up session expired."""


class UnknownSignupSessionError(SignupSessionUnavailableError):
    """No sign-up session has this registration id (never issued, or deleted by TTL)."""


class SignupAlreadyCompletedError(FulfillmentError):
    """The sign-up of this registration was already submitted."""


class RegistrationPendingError(FulfillmentError):
    """The registration is accepted but not recorded yet: its writes failed and it waits on
    the recovery queue (a live session without its customer item, or a deferred link whose
    session is not stored yet). Answered "try again shortly", never "gone"."""
