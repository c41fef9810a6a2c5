"""The names that lambda/, infra/ and local/ share, declared once.

Environment variables, handler paths, metric names and their dimensions, table keys and
indexes, event sources and detail types. The standard library only: the CDK app and the
local stack import this module without importing anything else of the function package,
and every function imports it on its cold path.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

# --- Handler paths -----------------------------------------------------------------------
# The fulfillment URL's path is named by sellers' stacks and external checks: it never moves.
FULFILLMENT_HANDLER = "fulfillment.api.lambda_handler"
SIGNUP_HANDLER = "fulfillment.signup.handler.lambda_handler"
HANDOFF_HANDLER = "fulfillment.handoff.handler.lambda_handler"
PUBLISHER_HANDLER = "fulfillment.events.handler.lambda_handler"
LIFECYCLE_HANDLER = "fulfillment.lifecycle.handler.lambda_handler"
RECOVERY_HANDLER = "fulfillment.recovery.handler.lambda_handler"

# --- Environment variables ---------------------------------------------------------------
# Each function's settings module says which of these it reads (its ENVIRONMENT_KEYS).
CUSTOMERS_TABLE_NAME = "CUSTOMERS_TABLE_NAME"
CONTACTS_TABLE_NAME = "CONTACTS_TABLE_NAME"
IDEMPOTENCY_TABLE_NAME = "IDEMPOTENCY_TABLE_NAME"
PRODUCT_CODES = "PRODUCT_CODES"
REGISTRATION_URL = "REGISTRATION_URL"
TRIAL_REGISTRATION_URL = "TRIAL_REGISTRATION_URL"
MARKETPLACE_REGION = "MARKETPLACE_REGION"
SESSION_TTL_SECONDS = "SESSION_TTL_SECONDS"
SIGNUP_COMPLETE_URL = "SIGNUP_COMPLETE_URL"
SIGNUP_EXTRA_FIELDS = "SIGNUP_EXTRA_FIELDS"
EVENT_BUS_NAME = "EVENT_BUS_NAME"
PUBLISH_RETRY_QUEUE_URL = "PUBLISH_RETRY_QUEUE_URL"
RECOVERY_QUEUE_URL = "RECOVERY_QUEUE_URL"
# Powertools' own; every function gets both from the stack.
POWERTOOLS_SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"
POWERTOOLS_METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"
DEFAULT_SERVICE_NAME = "fulfillment"
DEFAULT_METRICS_NAMESPACE = "Fulfillment"

DEFAULT_MARKETPLACE_REGION = "us-east-1"
DEFAULT_SESSION_TTL_SECONDS = 3600
MIN_SESSION_TTL_SECONDS = 60
MAX_SESSION_TTL_SECONDS = 7 * 24 * 3600

# The sign-up form's extra fields: cdk.json `signupExtraFields`, checked at synth, reaches the
# function as SIGNUP_EXTRA_FIELDS and is checked again there, by the same rules.
EXTRA_FIELD_NAME_PATTERN = r"[a-z][a-z0-9_]{0,39}"
MAX_EXTRA_FIELDS = 10
MAX_FIELD_LENGTH = 2000
DEFAULT_FIELD_LENGTH = 200
MAX_LABEL_LENGTH = 100
# Names the built-in form uses itself; an extra field may not shadow them.
RESERVED_FIELD_NAMES = frozenset(
    {"company", "contact_name", "email", "phone", "registration", "csrf_token"}
)

# --- Metrics -----------------------------------------------------------------------------
# Powertools writes every metric with a `service` dimension, and CloudWatch matches a metric
# only on its exact dimension set: each name says which set it is emitted with.


class MetricName(StrEnum):
    # Dimensions {service}.
    REGISTRATION_SUCCEEDED = "RegistrationSucceeded"
    NEW_CUSTOMER = "NewCustomer"
    RETURNING_CUSTOMER = "ReturningCustomer"
    DUPLICATE_SUBMISSION = "DuplicateSubmission"
    # A resolved registration parked on the recovery queue (fulfillment URL), and one replayed
    # into the customers table (recovery processor). Dimensions {service}.
    REGISTRATION_DEFERRED = "RegistrationDeferred"
    REGISTRATION_RECOVERED = "RegistrationRecovered"
    # {Reason, service}: Reason is a RejectionReason.
    REGISTRATION_REJECTED = "RegistrationRejected"
    # {ErrorCode, service}: ErrorCode is a MarketplaceErrorCode.
    MARKETPLACE_ERROR = "MarketplaceError"
    # The sign-up page. SignupCompleted {service}; SignupRejected {Reason, service}, Reason a
    # SignupRejectionReason.
    SIGNUP_COMPLETED = "SignupCompleted"
    SIGNUP_REJECTED = "SignupRejected"
    # One per lifecycle notification: {EventType, Outcome, service}, EventType a
    # NotificationType or UNKNOWN_EVENT_TYPE, Outcome a LifecycleOutcome.
    LIFECYCLE_NOTIFICATION = "LifecycleNotification"


SERVICE_DIMENSION = "service"
REASON_DIMENSION = "Reason"
ERROR_CODE_DIMENSION = "ErrorCode"
EVENT_TYPE_DIMENSION = "EventType"
OUTCOME_DIMENSION = "Outcome"
# Powertools' cold-start metric: {function_name, service}, function_name the Lambda
# function's name unless POWERTOOLS_METRICS_FUNCTION_NAME says otherwise.
COLD_START = "ColdStart"
FUNCTION_NAME_DIMENSION = "function_name"


class RejectionReason(StrEnum):
    """Why a submission was refused: the Reason of RegistrationRejected."""

    MISSING_TOKEN = "MissingToken"
    MALFORMED_TOKEN = "MalformedToken"
    INVALID_TOKEN = "InvalidToken"
    EXPIRED_TOKEN = "ExpiredToken"
    UNKNOWN_PRODUCT = "UnknownProduct"


class SignupRejectionReason(StrEnum):
    """Why a sign-up request was turned away: the Reason of SignupRejected."""

    INVALID_INPUT = "InvalidInput"
    CSRF_MISMATCH = "CsrfMismatch"
    EXPIRED_REGISTRATION = "ExpiredRegistration"
    UNKNOWN_REGISTRATION = "UnknownRegistration"
    MALFORMED_REGISTRATION = "MalformedRegistration"
    ALREADY_COMPLETED = "AlreadyCompleted"
    UNREADABLE_FORM = "UnreadableForm"


class MarketplaceErrorCode(StrEnum):
    """The ErrorCode of MarketplaceError: AWS's codes we know, and three of our own."""

    INVALID_TOKEN = "InvalidTokenException"
    EXPIRED_TOKEN = "ExpiredTokenException"
    THROTTLING = "ThrottlingException"
    INTERNAL_SERVICE_ERROR = "InternalServiceErrorException"
    DISABLED_API = "DisabledApiException"
    # Timeouts and connection failures that outlasted botocore's retries.
    NETWORK_ERROR = "NetworkError"
    # ResolveCustomer answered without an identity a customer can be keyed on.
    MISSING_IDENTITY = "MissingIdentity"
    # Any other AWS code, under one name so the metric stays bounded.
    OTHER_ERROR = "OtherError"


# A fault on the Marketplace side or ours, not the buyer's: these feed the Marketplace
# error-rate alarm. An invalid or expired token is a stale link, counted as a rejection.
MARKETPLACE_FAILURE_CODES = tuple(
    code
    for code in MarketplaceErrorCode
    if code not in {MarketplaceErrorCode.INVALID_TOKEN, MarketplaceErrorCode.EXPIRED_TOKEN}
)


class LifecycleOutcome(StrEnum):
    """What became of one lifecycle notification: the Outcome of LifecycleNotification."""

    APPLIED = "applied"
    STALE = "stale"
    IGNORED_PRODUCT = "ignored-product"
    NO_CHANGE = "no-change"
    PARKED = "parked"
    FAILED = "failed"


# --- Events ------------------------------------------------------------------------------
# Registration events the publisher puts on the seller's bus.
REGISTRATION_EVENT_SOURCE = "fulfillment.registration"


class DetailType(StrEnum):
    CUSTOMER_REGISTERED = "Customer Registered"
    CUSTOMER_SIGNED_UP = "Customer Signed Up"
    CUSTOMER_STATUS_CHANGED = "Customer Status Changed"


# Marketplace's own: the EventBridge source of agreement and license events, and every
# lifecycle notification type (EventBridge detail types, then legacy SNS actions).
MARKETPLACE_EVENT_SOURCE = "aws.agreement-marketplace"


class NotificationType(StrEnum):
    """What happened; also the EventType of LifecycleNotification."""

    AGREEMENT_CREATED = "Purchase Agreement Created"
    AGREEMENT_AMENDED = "Purchase Agreement Amended"
    AGREEMENT_ENDED = "Purchase Agreement Ended"
    LICENSE_UPDATED = "License Updated"
    LICENSE_DEPROVISIONED = "License Deprovisioned"
    SUBSCRIBE_SUCCESS = "subscribe-success"
    SUBSCRIBE_FAIL = "subscribe-fail"
    UNSUBSCRIBE_PENDING = "unsubscribe-pending"
    UNSUBSCRIBE_SUCCESS = "unsubscribe-success"
    ENTITLEMENT_UPDATED = "entitlement-updated"


# The EventType of a body that could not be parsed.
UNKNOWN_EVENT_TYPE = "Unknown"

# --- Tables ------------------------------------------------------------------------------
PK = "pk"
SK = "sk"
# The customers table's item types (sort key values and key prefixes).
CUSTOMER_SK = "CUSTOMER"
SESSION_SK = "SESSION"
SESSION_PREFIX = "SESSION#"
AGREEMENT_SK = "AGREEMENT"
AGREEMENT_PREFIX = "AGREEMENT#"
HISTORY_PREFIX = "STATUS#"
EXPIRES_AT = "expires_at"
# The customers table's sparse indexes: an item is in one only when it has that attribute.
BY_LICENSE = "by_license"
BY_ACCOUNT = "by_account"
BY_CUSTOMER_IDENTIFIER = "by_customer_identifier"
BY_AGREEMENT = "by_agreement"


class Index(NamedTuple):
    name: str
    partition_key: str
    sort_key: str | None = None


class TableSchema(NamedTuple):
    partition_key: str
    sort_key: str | None
    # The TTL attribute, or None for items that never expire.
    ttl_attribute: str | None
    indexes: tuple[Index, ...] = ()
    # DynamoDB Streams view type ("NEW_AND_OLD_IMAGES", ...), or None for no stream.
    stream_view_type: str | None = None

    def key_attributes(self) -> list[str]:
        names = [self.partition_key, *([self.sort_key] if self.sort_key else [])]
        for index in self.indexes:
            names += [index.partition_key, *([index.sort_key] if index.sort_key else [])]
        return list(dict.fromkeys(names))


# Customers (sk CUSTOMER), sign-up sessions (sk SESSION, removed by TTL) and parked agreement
# changes. Lifecycle notifications find a customer by license, account, legacy identifier or
# agreement through the indexes, without a scan.
CUSTOMERS = TableSchema(
    partition_key=PK,
    sort_key=SK,
    ttl_attribute=EXPIRES_AT,
    indexes=(
        Index(BY_LICENSE, "license_arn"),
        Index(BY_ACCOUNT, "customer_aws_account_id", "product_code"),
        Index(BY_CUSTOMER_IDENTIFIER, "customer_identifier"),
        Index(BY_AGREEMENT, "agreement_id"),
    ),
    # The registration events publisher derives its events from both images of each write.
    stream_view_type="NEW_AND_OLD_IMAGES",
)

# Powertools idempotency records: its default key and expiry attribute names.
IDEMPOTENCY = TableSchema(partition_key="id", sort_key=None, ttl_attribute="expiration")

# The buyer's contact details from the built-in sign-up page, one item per customer
# (pk = the customer's key): the only personal data, in a table of its own so that only the
# sign-up function can reach it. No stream, no indexes, nothing expires.
CONTACTS = TableSchema(partition_key=PK, sort_key=None, ttl_attribute=None)
