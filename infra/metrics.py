"""The function's metric contract as the dashboards and alarms see it.

Plain constants, no CDK import. Infra never imports the function package, so the names are
repeated here; tests/infrastructure/test_monitoring.py checks they equal what the function
emits (``fulfillment.observability``, ``fulfillment.errors``, ``fulfillment.marketplace``).

Powertools writes every metric with a ``service`` dimension. CloudWatch matches a metric only
on its exact dimension set, so each name below says which set it is emitted with.
"""

from __future__ import annotations

from typing import Final

NAMESPACE_DEFAULT: Final = "Fulfillment"
SERVICE_DEFAULT: Final = "fulfillment"

SERVICE_DIMENSION: Final = "service"

# Dimensions {service}.
REGISTRATION_SUCCEEDED: Final = "RegistrationSucceeded"
NEW_CUSTOMER: Final = "NewCustomer"
RETURNING_CUSTOMER: Final = "ReturningCustomer"
DUPLICATE_SUBMISSION: Final = "DuplicateSubmission"

# Dimensions {service}. A resolved registration parked on the recovery queue (fulfillment
# function), and one replayed into the customers table (recovery processor).
REGISTRATION_DEFERRED: Final = "RegistrationDeferred"
REGISTRATION_RECOVERED: Final = "RegistrationRecovered"

# Dimensions {Reason, service}.
REGISTRATION_REJECTED: Final = "RegistrationRejected"
REASON_DIMENSION: Final = "Reason"
REJECTION_REASONS: Final = (
    "MissingToken",
    "MalformedToken",
    "InvalidToken",
    "ExpiredToken",
    "UnknownProduct",
)

# The sign-up page. SignupCompleted: dimensions {service}. SignupRejected: {Reason, service},
# Reason one of SIGNUP_REJECTION_REASONS (fulfillment.errors.SignupRejectionReason).
SIGNUP_COMPLETED: Final = "SignupCompleted"
SIGNUP_REJECTED: Final = "SignupRejected"
SIGNUP_REJECTION_REASONS: Final = (
    "InvalidInput",
    "CsrfMismatch",
    "ExpiredRegistration",
    "UnknownRegistration",
    "MalformedRegistration",
    "AlreadyCompleted",
    "UnreadableForm",
)

# Dimensions {ErrorCode, service}.
MARKETPLACE_ERROR: Final = "MarketplaceError"
ERROR_CODE_DIMENSION: Final = "ErrorCode"
DISABLED_API_CODE: Final = "DisabledApiException"
MARKETPLACE_ERROR_CODES: Final = (
    "InvalidTokenException",
    "ExpiredTokenException",
    "ThrottlingException",
    "InternalServiceErrorException",
    DISABLED_API_CODE,
    "NetworkError",
    "MissingIdentity",
    "OtherError",
)
# Codes that are a fault on the Marketplace side or ours, not the buyer's: they feed the
# Marketplace error-rate alarm. An invalid or expired token is the buyer's (a stale link),
# and is counted as a rejection instead.
MARKETPLACE_FAILURE_CODES: Final = (
    "ThrottlingException",
    "InternalServiceErrorException",
    DISABLED_API_CODE,
    "NetworkError",
    "MissingIdentity",
    "OtherError",
)

# The subscription lifecycle processor: dimensions {EventType, Outcome, service}, one per
# notification. EventType: LIFECYCLE_EVENT_TYPES (fulfillment.notifications.NotificationType,
# or "Unknown" for a body that could not be parsed); Outcome: LIFECYCLE_OUTCOMES
# (fulfillment.subscriptions.Outcome).
LIFECYCLE_NOTIFICATION: Final = "LifecycleNotification"
EVENT_TYPE_DIMENSION: Final = "EventType"
OUTCOME_DIMENSION: Final = "Outcome"
LIFECYCLE_EVENT_TYPES: Final = (
    "Purchase Agreement Created",
    "Purchase Agreement Amended",
    "Purchase Agreement Ended",
    "License Updated",
    "License Deprovisioned",
    "subscribe-success",
    "subscribe-fail",
    "unsubscribe-pending",
    "unsubscribe-success",
    "entitlement-updated",
    "Unknown",
)
LIFECYCLE_OUTCOMES: Final = (
    "applied",
    "stale",
    "ignored-product",
    "no-change",
    "parked",
    "failed",
)
LIFECYCLE_FAILED_OUTCOME: Final = "failed"

# Powertools' cold-start metric: dimensions {function_name, service}, where function_name is
# the Lambda function's name unless POWERTOOLS_METRICS_FUNCTION_NAME says otherwise.
COLD_START: Final = "ColdStart"
FUNCTION_NAME_DIMENSION: Final = "function_name"

METRIC_NAMES: Final = (
    REGISTRATION_SUCCEEDED,
    NEW_CUSTOMER,
    RETURNING_CUSTOMER,
    DUPLICATE_SUBMISSION,
    REGISTRATION_DEFERRED,
    REGISTRATION_RECOVERED,
    REGISTRATION_REJECTED,
    MARKETPLACE_ERROR,
    SIGNUP_COMPLETED,
    SIGNUP_REJECTED,
    LIFECYCLE_NOTIFICATION,
)
