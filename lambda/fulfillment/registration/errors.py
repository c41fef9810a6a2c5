"""Why a registration fails: the buyer's submission, ResolveCustomer, or the recovery queue."""

from __future__ import annotations

from fulfillment.contract import RejectionReason
from fulfillment.core.errors import FulfillmentError, StorageUnavailableError


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


class RecoveryUnavailableError(StorageUnavailableError):
    """A resolved registration could not be written nor parked on the recovery queue.

    Nothing was promised to the buyer: they get the Try again page, and the token stays valid.
    """


class RegistrationInProgressError(FulfillmentError):
    """Another request is still registering the same token."""
