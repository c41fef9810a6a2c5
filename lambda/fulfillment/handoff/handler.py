"""Entry point of the seller hand-off: IAM-authorized ``GET /registrations/{id}``.

The seller's own sign-up site receives ``?registration=<id>``; its backend calls this with
SigV4 to learn which AWS Marketplace customer the id belongs to. JSON in every answer,
contact details never (they live in the contacts table, which this function cannot reach).

Dependencies: ``lambda_handler(event, context, store=..., clock=...)`` takes a
``RegistrationReader`` and a clock. Each one left out, as Lambda calls it, is the execution
environment's own: the customers table (from the environment) on the shared DynamoDB client,
built on the first request, once per container; the system clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import Any, NamedTuple

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from fulfillment.core import aws, startup
from fulfillment.core.answers import Detail, Log, lookup, report
from fulfillment.core.errors import ConfigurationError, StorageUnavailableError
from fulfillment.core.ids import pseudonym
from fulfillment.core.observability import logger, metrics
from fulfillment.core.responses import caller as caller_of
from fulfillment.core.responses import json_answer
from fulfillment.customers.errors import (
    MalformedRegistrationIdError,
    RegistrationPendingError,
    SignupSessionUnavailableError,
    UnknownSignupSessionError,
)
from fulfillment.customers.store import DynamoDBCustomerStore
from fulfillment.handoff.lookup import (
    RegistrationLookup,
    RegistrationReader,
    lookup_registration,
)
from fulfillment.handoff.settings import get_handoff_settings

PATH_PARAMETER = "id"
RETRY_AFTER_SECONDS = 5
NOT_FOUND = "No such registration, or it has expired."


class ErrorAnswer(NamedTuple):
    status: int
    message: str
    # Bounded value for the log line (what happened, never who).
    outcome: str
    log: Log
    retry_after: int | None = None

    def report(self, error: BaseException, caller: str | None) -> None:
        """Log ``error`` once, with who asked and what happened (the hand-off counts nothing)."""
        report(error, self.log, context={"caller": caller, "outcome": self.outcome}, stacklevel=2)


_REFUSED = "registration lookup refused"

# The one table from error to answer: status, message, the log line. Looked up along the
# exception's class hierarchy (most specific first). Anything not in it is unexpected: 500
# with the request id, logged with its traceback.
ERRORS: dict[type[Exception], ErrorAnswer] = {
    MalformedRegistrationIdError: ErrorAnswer(
        400, "The registration id is malformed.", "MalformedId", Log(logging.WARNING, _REFUSED)
    ),
    # One answer for unknown and expired: the caller learns nothing about ids it guesses.
    UnknownSignupSessionError: ErrorAnswer(404, NOT_FOUND, "Unknown", Log(logging.INFO, _REFUSED)),
    # Parked after its customer write failed; the recovery processor completes it (seconds,
    # or minutes while DynamoDB keeps failing). WARNING: it should not last.
    RegistrationPendingError: ErrorAnswer(
        503,
        "The registration is still being recorded; try again shortly.",
        "CustomerPending",
        Log(logging.WARNING, _REFUSED),
        retry_after=RETRY_AFTER_SECONDS,
    ),
    SignupSessionUnavailableError: ErrorAnswer(
        404, NOT_FOUND, "Expired", Log(logging.INFO, _REFUSED)
    ),
    StorageUnavailableError: ErrorAnswer(
        503,
        "Storage is temporarily unavailable; try again shortly.",
        "StorageUnavailable",
        Log(logging.ERROR, _REFUSED, details=(Detail.ERROR,)),  # the DynamoDB error code
        retry_after=RETRY_AFTER_SECONDS,
    ),
    ConfigurationError: ErrorAnswer(
        500,
        "Internal error.",
        "ConfigurationFault",
        Log(logging.ERROR, _REFUSED, details=(Detail.VARIABLE,)),
    ),
}
UNFORESEEN = ErrorAnswer(
    500,
    "Internal error.",
    "Unexpected",
    Log(logging.ERROR, "registration lookup failed unexpectedly", traceback=True),
)


def answer_for(error: BaseException) -> ErrorAnswer:
    return lookup(error, ERRORS, UNFORESEEN)


def utc_now() -> datetime:
    return datetime.now(UTC)


# Keyed on the table name: one store per container (whose settings never change).
@cache
def _store_for(customers_table_name: str) -> DynamoDBCustomerStore:
    return DynamoDBCustomerStore(aws.dynamodb(), customers_table_name)


# log_event=False explicitly: POWERTOOLS_LOGGER_LOG_EVENT=true would otherwise log the whole
# event, and with it the registration token or the buyer's contact details.
@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True, log_event=False
)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(
    event: dict[str, Any],
    context: LambdaContext,
    *,
    store: RegistrationReader | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> dict[str, Any]:
    request_context = event.get("requestContext") or {}
    request_id = str(request_context.get("requestId") or context.aws_request_id)
    caller = caller_of(request_context)
    registration_id = str((event.get("pathParameters") or {}).get(PATH_PARAMETER) or "")
    try:
        if store is None:
            store = _store_for(get_handoff_settings().customers_table_name)
        found = lookup_registration(registration_id, store, clock())
    except Exception as error:  # every failure becomes a JSON answer
        return _error(error, request_id, caller)
    logger.info(
        "registration handed off to the seller",
        extra={
            "caller": caller,
            "outcome": "Found",
            "customer_ref": pseudonym(found.customer.customer_key),
            "product_code": found.customer.product_code,
            "sign_up_completed": found.session.completed,
        },
    )
    return json_answer(200, _representation(found))


def _representation(found: RegistrationLookup) -> dict[str, Any]:
    """What the seller's backend gets: identity and status, never contact details or tokens."""
    session, customer = found.session, found.customer
    return {
        "registration": {
            "id": session.session_id,
            "expiresAt": datetime.fromtimestamp(session.expires_at, UTC).isoformat(),
            "signUpCompleted": session.completed,
        },
        "customer": {
            "productCode": customer.product_code,
            "customerAWSAccountId": customer.customer_aws_account_id,
            "licenseArn": customer.license_arn,
            "customerIdentifier": customer.customer_identifier,
            "agreementId": customer.agreement_id,
            "offerId": customer.offer_id,
            "freeTrial": customer.free_trial,
            "status": customer.status,
            "signedUpAt": customer.signed_up_at,
        },
    }


def _error(error: Exception, request_id: str, caller: str | None) -> dict[str, Any]:
    answer = answer_for(error)
    answer.report(error, caller)
    headers = {"Retry-After": str(answer.retry_after)} if answer.retry_after else {}
    body = {"message": answer.message, "requestId": request_id}
    return json_answer(answer.status, body, headers)


startup.imports_done()
