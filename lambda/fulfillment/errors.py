"""The project's own exceptions. Their mapping to HTTP status and page lives in pages.py."""

from __future__ import annotations

from enum import StrEnum


class RejectionReason(StrEnum):
    """Why a submission was refused: the bounded value set of the RegistrationRejected metric."""

    MISSING_TOKEN = "MissingToken"
    MALFORMED_TOKEN = "MalformedToken"
    INVALID_TOKEN = "InvalidToken"
    EXPIRED_TOKEN = "ExpiredToken"
    UNKNOWN_PRODUCT = "UnknownProduct"


class FulfillmentError(Exception):
    """Base of every error this function answers with a page of its own."""


class ConfigurationError(FulfillmentError):
    """An environment variable is missing or invalid: an operator's fault, not the buyer's."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable} {problem}")
        self.variable = variable
        self.problem = problem


class RejectedSubmissionError(FulfillmentError):
    """The buyer's submission cannot be registered; they must start again from Marketplace."""

    reason: RejectionReason


class MissingTokenError(RejectedSubmissionError):
    reason = RejectionReason.MISSING_TOKEN


class MalformedTokenError(RejectedSubmissionError):
    reason = RejectionReason.MALFORMED_TOKEN


class OversizedRequestError(MalformedTokenError):
    """The request body is far larger than any Marketplace form post."""


class UnknownProductError(RejectedSubmissionError):
    reason = RejectionReason.UNKNOWN_PRODUCT

    def __init__(self, product_code: str) -> None:
        super().__init__("token resolved to a product that is not configured")
        self.product_code = product_code


class MarketplaceError(FulfillmentError):
    """ResolveCustomer failed; ``code`` is the bounded AWS error code (MarketplaceError metric)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class InvalidTokenError(MarketplaceError, RejectedSubmissionError):
    reason = RejectionReason.INVALID_TOKEN


class ExpiredTokenError(MarketplaceError, RejectedSubmissionError):
    reason = RejectionReason.EXPIRED_TOKEN


class MarketplaceUnavailableError(MarketplaceError):
    """Throttling, an AWS-side fault or a timeout that outlasted the retries: try again shortly."""


class MarketplaceDisabledError(MarketplaceError):
    """ResolveCustomer is not enabled in the configured region: a configuration fault."""


class IncompleteCustomerError(MarketplaceError):
    """ResolveCustomer answered without an identity we can key a customer on."""


class DeadlineExceededError(FulfillmentError):
    """The invocation has no time left for another AWS call; the buyer may try again."""


class StorageUnavailableError(FulfillmentError):
    """DynamoDB refused or timed out after retries; nothing was registered, try again."""


class RecoveryUnavailableError(StorageUnavailableError):
    """A resolved registration could not be written nor parked on the recovery queue.

    Nothing was promised to the buyer: they get the Try again page, and the token stays valid.
    """


class RegistrationInProgressError(FulfillmentError):
    """Another request is still registering the same token."""


class SignupSessionUnavailableError(FulfillmentError):
    """The registration id is unknown or its sign-up session expired."""


class SignupAlreadyCompletedError(FulfillmentError):
    """The sign-up of this registration was already submitted."""


class CsrfTokenError(FulfillmentError):
    """The sign-up form came back without the token bound to its registration id."""


class SignupRejectionReason(StrEnum):
    """Why a sign-up request was turned away: the bounded value set of SignupRejected."""

    INVALID_INPUT = "InvalidInput"
    CSRF_MISMATCH = "CsrfMismatch"
    EXPIRED_REGISTRATION = "ExpiredRegistration"
    UNKNOWN_REGISTRATION = "UnknownRegistration"
    MALFORMED_REGISTRATION = "MalformedRegistration"
    ALREADY_COMPLETED = "AlreadyCompleted"
    UNREADABLE_FORM = "UnreadableForm"


class UnknownSignupSessionError(SignupSessionUnavailableError):
    """No sign-up session has this registration id (never issued, or deleted by TTL)."""


class MalformedRegistrationIdError(FulfillmentError):
    """The registration id is missing or cannot be one we issued; no AWS call is made."""


class UnreadableFormError(FulfillmentError):
    """A form body that is not well-formed application/x-www-form-urlencoded."""


class OversizedFormError(UnreadableFormError):
    """A form body far larger than any form of ours."""
