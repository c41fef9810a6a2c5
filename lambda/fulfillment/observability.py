"""The one Logger and Metrics of the function, and the names of everything it measures.

Service name, namespace and log level come from the standard POWERTOOLS_* variables.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from enum import StrEnum

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from fulfillment.settings import metrics_namespace

logger = Logger()
metrics = Metrics(namespace=metrics_namespace())
# A page view (sign-up GET, hand-off lookup) or a lifecycle batch counted by dimensioned
# single metrics adds nothing to the default set: expected, so no UserWarning on stderr in
# every new container (the filter Powertools documents for this warning).
warnings.filterwarnings("ignore", "No application metrics to publish")

# botocore's DEBUG lines print request parameters, and ResolveCustomer's only parameter is the
# registration token. Keep the AWS SDK's own loggers above DEBUG whatever the function's level.
for _name in ("botocore", "boto3", "urllib3"):
    logging.getLogger(_name).setLevel(logging.INFO)


class MetricName(StrEnum):
    REGISTRATION_SUCCEEDED = "RegistrationSucceeded"
    NEW_CUSTOMER = "NewCustomer"
    RETURNING_CUSTOMER = "ReturningCustomer"
    DUPLICATE_SUBMISSION = "DuplicateSubmission"
    REGISTRATION_REJECTED = "RegistrationRejected"
    MARKETPLACE_ERROR = "MarketplaceError"
    # A resolved registration parked on the recovery queue (fulfillment.api), and replayed
    # into the customers table (fulfillment.recovery).
    REGISTRATION_DEFERRED = "RegistrationDeferred"
    REGISTRATION_RECOVERED = "RegistrationRecovered"
    # The sign-up page (fulfillment.signup).
    SIGNUP_COMPLETED = "SignupCompleted"
    SIGNUP_REJECTED = "SignupRejected"
    # The subscription lifecycle processor (fulfillment.lifecycle).
    LIFECYCLE_NOTIFICATION = "LifecycleNotification"


# Dimension names of the metrics that are split by a bounded value (RegistrationRejected and
# SignupRejected by Reason, MarketplaceError by ErrorCode).
REASON_DIMENSION = "Reason"
ERROR_CODE_DIMENSION = "ErrorCode"
# LifecycleNotification: one per notification, by EventType and Outcome (both bounded:
# fulfillment.notifications.NotificationType or "Unknown", fulfillment.subscriptions.Outcome).
EVENT_TYPE_DIMENSION = "EventType"
OUTCOME_DIMENSION = "Outcome"


def count(name: MetricName) -> None:
    """Add one to ``name`` in this invocation's metric blob (dimension: service only)."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)


def count_by(name: MetricName, dimension: str, value: str) -> None:
    """Emit one ``name`` with an extra bounded dimension, in a blob of its own."""
    count_with(name, {dimension: value})


def count_with(name: MetricName, dimensions: dict[str, str]) -> None:
    """Emit one ``name`` with several extra bounded dimensions, in a blob of its own."""
    with single_metric(
        name=name,
        unit=MetricUnit.Count,
        value=1,
        namespace=metrics.namespace,
    ) as metric:
        for dimension, value in dimensions.items():
            metric.add_dimension(name=dimension, value=value)


def pseudonym(value: str) -> str:
    """A stable, non-reversible reference for logs in place of a customer identifier."""
    return hashlib.sha256(value.encode()).hexdigest()[:16]
