"""The names that lambda/, infra/ and local/ share, declared once.

Environment variables, handler paths, metric names and their dimensions, table keys and
indexes, event sources and detail types, the security headers and the pages API Gateway
answers with itself. The standard library only: the CDK app and the
local stack import this module without importing anything else of the function package,
and every function imports it on its cold path.
"""

from __future__ import annotations

import base64
import hashlib
import html
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
# Metering (issue 15): the usage intake (POST /usage) and the hourly run.
USAGE_HANDLER = "fulfillment.metering.intake.lambda_handler"
METERING_HANDLER = "fulfillment.metering.handler.lambda_handler"

# --- Environment variables ---------------------------------------------------------------
# Each function's settings module says which of these it reads (its ENVIRONMENT_KEYS).
CUSTOMERS_TABLE_NAME = "CUSTOMERS_TABLE_NAME"
CONTACTS_TABLE_NAME = "CONTACTS_TABLE_NAME"
IDEMPOTENCY_TABLE_NAME = "IDEMPOTENCY_TABLE_NAME"
PRODUCT_CODES = "PRODUCT_CODES"
# Optional, the lifecycle processor's: products priced by subscription only (no contract
# dimensions), a subset of PRODUCT_CODES, for which GetEntitlements is never called.
SUBSCRIPTION_PRODUCT_CODES = "SUBSCRIPTION_PRODUCT_CODES"
REGISTRATION_URL = "REGISTRATION_URL"
TRIAL_REGISTRATION_URL = "TRIAL_REGISTRATION_URL"
MARKETPLACE_REGION = "MARKETPLACE_REGION"
SESSION_TTL_SECONDS = "SESSION_TTL_SECONDS"
SIGNUP_COMPLETE_URL = "SIGNUP_COMPLETE_URL"
SIGNUP_EXTRA_FIELDS = "SIGNUP_EXTRA_FIELDS"
EVENT_BUS_NAME = "EVENT_BUS_NAME"
PUBLISH_RETRY_QUEUE_URL = "PUBLISH_RETRY_QUEUE_URL"
RECOVERY_QUEUE_URL = "RECOVERY_QUEUE_URL"
USAGE_TABLE_NAME = "USAGE_TABLE_NAME"
# Comma-separated metering dimensions of the deployment's products; empty: metering is off.
METERING_DIMENSIONS = "METERING_DIMENSIONS"
# "true": the hourly run does everything but BatchMeterUsage, and logs what it would send.
METERING_DRY_RUN = "METERING_DRY_RUN"
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
    # GetEntitlements answers not stored: {Reason, service}, Reason an
    # EntitlementDiscardReason. One per fetch that discarded anything.
    ENTITLEMENTS_DISCARDED = "EntitlementsDiscarded"
    # GetAgreementTerms refused for good, so an agreement's free trial is not known:
    # {Reason, service}, Reason an AgreementTermsUnknownReason.
    AGREEMENT_TERMS_UNKNOWN = "AgreementTermsUnknown"
    # Metering. UsageReports {Outcome, service}: accepted, duplicate, or rejected-<reason>.
    # MeteringRecords {Outcome, service}: an Outcome of fulfillment.metering.records, one per
    # record the hourly run answered. OldestUnmeteredHourAge {service}: seconds since the start
    # of the oldest closed hour not metered for good (0: none).
    USAGE_REPORTS = "UsageReports"
    METERING_RECORDS = "MeteringRecords"
    OLDEST_UNMETERED_HOUR_AGE = "OldestUnmeteredHourAge"


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


class EntitlementDiscardReason(StrEnum):
    """Why GetEntitlements' answer was not (wholly) stored: the Reason of
    EntitlementsDiscarded."""

    # The answer carried entitlements of another license, customer or product: ignored.
    OTHER_CUSTOMER = "OtherCustomer"
    # GetEntitlements refused the request (InvalidParameterException, permanent): the
    # notification's status is applied, its entitlements are not fetched again.
    INVALID_PARAMETER = "InvalidParameter"


class AgreementTermsUnknownReason(StrEnum):
    """Why an agreement's terms could not be read: the Reason of AgreementTermsUnknown."""

    # The function's role may not read them (IAM), or the seller is not the proposer.
    ACCESS_DENIED = "AccessDenied"
    NOT_FOUND = "NotFound"
    INVALID_REQUEST = "InvalidRequest"


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
    """The ErrorCode of MarketplaceError: AWS's codes we know, and our own."""

    INVALID_TOKEN = "InvalidTokenException"
    EXPIRED_TOKEN = "ExpiredTokenException"
    THROTTLING = "ThrottlingException"
    INTERNAL_SERVICE_ERROR = "InternalServiceErrorException"
    DISABLED_API = "DisabledApiException"
    # Timeouts and connection failures that outlasted botocore's retries.
    NETWORK_ERROR = "NetworkError"
    # ResolveCustomer answered without an identity a customer can be keyed on.
    MISSING_IDENTITY = "MissingIdentity"
    # ResolveCustomer answered without CustomerAWSAccountId (missing or empty): the customer
    # item's indexed attribute cannot hold an empty string, so nothing is stored or parked.
    MISSING_ACCOUNT_ID = "MissingAccountId"
    # ResolveCustomer answered a LicenseArn that is not a License Manager license's: no
    # customer key can be made of it (customers/licenses.py), so nothing is stored or parked.
    INVALID_LICENSE_ARN = "InvalidLicenseArn"
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
    # A well-formed Marketplace event of a detail type the function does not handle
    # (acknowledged, never retried; not a failure).
    IGNORED = "ignored"
    FAILED = "failed"


# --- Events ------------------------------------------------------------------------------
# Registration events the publisher puts on the seller's bus.
REGISTRATION_EVENT_SOURCE = "fulfillment.registration"


class DetailType(StrEnum):
    CUSTOMER_REGISTERED = "Customer Registered"
    CUSTOMER_SIGNED_UP = "Customer Signed Up"
    CUSTOMER_STATUS_CHANGED = "Customer Status Changed"
    CUSTOMER_FREE_TRIAL_CHANGED = "Customer Free Trial Changed"


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


# Each EventBridge notification type arrives as two detail types, "<type> - <role>". These
# are the detail types the lifecycle function handles and the only ones its rules subscribe
# to; any other that reaches the queue is acknowledged as LifecycleOutcome.IGNORED.
MARKETPLACE_ROLES = ("Manufacturer", "Proposer")
AGREEMENT_DETAIL_TYPES = tuple(
    f"{notification} - {role}"
    for notification in (
        NotificationType.AGREEMENT_CREATED,
        NotificationType.AGREEMENT_AMENDED,
        NotificationType.AGREEMENT_ENDED,
    )
    for role in MARKETPLACE_ROLES
)
LICENSE_DETAIL_TYPES = tuple(
    f"{notification} - {role}"
    for notification in (
        NotificationType.LICENSE_UPDATED,
        NotificationType.LICENSE_DEPROVISIONED,
    )
    for role in MARKETPLACE_ROLES
)

# The EventType of a body that could not be parsed, or of an EventBridge detail type the
# function does not handle (Outcome IGNORED; the detail type itself is in the log line).
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
# Customers by status (sort key sk, so a query can ask for customer items only): the hourly
# metering run's roster of subscribed customers.
BY_STATUS = "by_status"


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
        Index(BY_STATUS, "status", SK),
    ),
    # The registration events publisher derives its events from both images of each write.
    stream_view_type="NEW_AND_OLD_IMAGES",
)

# Metering (fulfillment/metering/store.py): reported usage by hour (HOUR#<hour>: PART#...
# items, the SEAL of a metered hour, RESULT#... per record, DONE), and remembered usage ids
# (USAGE#<id>). Everything expires (TTL).
USAGE = TableSchema(partition_key=PK, sort_key=SK, ttl_attribute=EXPIRES_AT)

# Powertools idempotency records: its default key and expiry attribute names.
IDEMPOTENCY = TableSchema(partition_key="id", sort_key=None, ttl_attribute="expiration")

# The buyer's contact details from the built-in sign-up page, one item per customer
# (pk = the customer's key): the only personal data, in a table of its own so that only the
# sign-up function can reach it. No stream, no indexes, nothing expires.
CONTACTS = TableSchema(partition_key=PK, sort_key=None, ttl_attribute=None)


# --- Answers -----------------------------------------------------------------------------
# Sent on every answer of the functions (core/responses.py) and of API Gateway itself (its
# gateway responses, infra/api.py; local/gateway.py), redirects included.
SECURITY_HEADERS: dict[str, str] = {
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}
MARKETPLACE_SUBSCRIPTIONS_URL = "https://console.aws.amazon.com/marketplace/home#/subscriptions"

# API Gateway's own answers to a buyer (throttling, WAF, a timeout, a path it does not have):
# a small page that loads nothing, instead of its bare JSON. The hand-off API keeps JSON.
GATEWAY_PAGE_CSS = (
    "body{font:16px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;"
    "background:#f2f3f3;color:#16191f}"
    "main{max-width:36rem;margin:2rem auto;padding:1.5rem;background:#fff;border-radius:8px}"
    "h1{font-size:1.5rem;margin-top:0}a{color:#0972d3}.reference{font-size:.875rem;color:#5f6b7a}"
)
_GATEWAY_PAGE_CSS_HASH = base64.b64encode(hashlib.sha256(GATEWAY_PAGE_CSS.encode()).digest())
GATEWAY_PAGE_CSP = (
    f"default-src 'none'; style-src 'sha256-{_GATEWAY_PAGE_CSS_HASH.decode()}'; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
# API Gateway fills this in (simple substitution; gateway response templates run no VTL).
GATEWAY_REQUEST_ID = "$context.requestId"


class GatewayPage(NamedTuple):
    """The page for one API Gateway response type (its status stays API Gateway's)."""

    response_type: str
    title: str
    message: str


_TRY_AGAIN_LATER = (
    "Your subscription is safe in AWS Marketplace. Please try again in a few minutes from "
    "your AWS Marketplace subscriptions."
)
GATEWAY_PAGES: tuple[GatewayPage, ...] = (
    GatewayPage(
        "DEFAULT_4XX",
        "This page is not available",
        "The address may be incomplete, or the link has been used up. To set up your "
        "account, start again from your AWS Marketplace subscriptions.",
    ),
    GatewayPage("DEFAULT_5XX", "Something went wrong", _TRY_AGAIN_LATER),
    GatewayPage(
        "THROTTLED",
        "Too many requests",
        "We are receiving more requests than we can answer right now. Wait a few seconds, "
        "then try again.",
    ),
    GatewayPage(
        "WAF_FILTERED",
        "Your request was blocked",
        "Our firewall did not accept this request. To set up your account, start again from "
        "your AWS Marketplace subscriptions.",
    ),
    GatewayPage("INTEGRATION_TIMEOUT", "This is taking too long", _TRY_AGAIN_LATER),
)


def gateway_page_html(page: GatewayPage, reference: str) -> str:
    """The whole page for ``page``; ``reference`` is the request id (GATEWAY_REQUEST_ID where
    API Gateway fills it in). Everything is escaped; the page loads nothing."""
    e = html.escape
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="robots" content="noindex">\n'
        f"<title>{e(page.title)}</title>\n<style>{GATEWAY_PAGE_CSS}</style>\n</head>\n"
        f"<body>\n<main>\n<h1>{e(page.title)}</h1>\n<p>{e(page.message)}</p>\n"
        f'<p><a href="{e(MARKETPLACE_SUBSCRIPTIONS_URL)}">Go to your AWS Marketplace '
        "subscriptions</a></p>\n"
        '<p class="reference">If you contact the seller, quote this reference: '
        f"<code>{e(reference)}</code></p>\n</main>\n</body>\n</html>"
    )
