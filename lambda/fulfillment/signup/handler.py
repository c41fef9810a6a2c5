"""Entry point of the built-in sign-up page (API Gateway REST, Lambda proxy integration).

GET /signup?registration=<id> shows the form; POST /signup stores the buyer's contact details
once and confirms (or redirects to SIGNUP_COMPLETE_URL). Contact details are never logged.

Dependencies: ``lambda_handler(event, context, settings=..., store=..., clock=...)`` takes
its settings, a ``SignupStore`` and a clock. Each one left out, as Lambda calls it, is the
execution environment's own: the settings read from the environment once, the customers
table adapter on the shared DynamoDB client (built on the first request that reads a
session, once per container), the system clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import quote

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from fulfillment.contract import REASON_DIMENSION, MetricName, SignupRejectionReason
from fulfillment.core import aws, responses, startup
from fulfillment.core.errors import StorageUnavailableError
from fulfillment.core.forms import Fields, form_fields, query_fields
from fulfillment.core.ids import pseudonym
from fulfillment.core.observability import count, count_by, logger, metrics
from fulfillment.core.pages import render
from fulfillment.core.redirects import DEFERRED_PARAMETER, registration_location
from fulfillment.customers.errors import RegistrationPendingError
from fulfillment.customers.store import DynamoDBCustomerStore
from fulfillment.signup import contacts, pages
from fulfillment.signup.ports import SignupStore
from fulfillment.signup.settings import SignupSettings, get_signup_settings

# The form is at most 4 + 10 configured fields of up to 2,000 characters; percent-encoded
# UTF-8 takes up to 9 bytes a character.
MAX_BODY_BYTES = 256 * 1024
MAX_FORM_FIELDS = 64
STORAGE_RETRY_SECONDS = 5
_STORAGE_NOTICE = (
    "We could not save your details just now. Nothing was lost: wait a few seconds and choose "
    "\u201cComplete sign-up\u201d again."
)
# A live session whose customer the recovery processor has not written yet.
_PENDING_NOTICE = (
    "We are still finishing setting up your account. Nothing was lost: wait a few seconds and "
    "choose \u201cComplete sign-up\u201d again."
)


def utc_now() -> datetime:
    return datetime.now(UTC)


# Keyed on the table names: one store per container (whose settings never change).
@cache
def _store_for(customers_table_name: str, contacts_table_name: str) -> DynamoDBCustomerStore:
    return DynamoDBCustomerStore(
        aws.dynamodb(), customers_table_name, contacts_table_name=contacts_table_name
    )


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
    settings: SignupSettings | None = None,
    store: SignupStore | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> dict[str, Any]:
    request_id = (event.get("requestContext") or {}).get("requestId") or context.aws_request_id
    registration: str | None = None
    deferred: int | None = None
    try:
        deferred = contacts.deferred_until(query_fields(event).get(DEFERRED_PARAMETER))
        if settings is None:
            settings = get_signup_settings()
        if event.get("httpMethod") == "POST":
            fields = form_fields(event, max_body_bytes=MAX_BODY_BYTES, max_fields=MAX_FORM_FIELDS)
            registration = contacts.registration_id(
                fields.get(contacts.REGISTRATION_FIELD)
                or query_fields(event).get(contacts.REGISTRATION_FIELD)
            )
            store = _store(settings) if store is None else store
            return _submit(settings, store, clock(), registration, fields)
        registration = contacts.registration_id(
            query_fields(event).get(contacts.REGISTRATION_FIELD)
        )
        store = _store(settings) if store is None else store
        session = contacts.open_signup(store, registration, clock(), deferred)
        return pages.render_signup_form(
            contacts.field_rules(settings.signup_extra_fields),
            registration=registration,
            csrf_token=session.csrf_token,
        )
    except Exception as error:  # every failure becomes a page for a person
        # Logged and counted once, never with contact details.
        answer = pages.answer_for(error)
        answer.report(error)
        return render(answer.page, reference=request_id, retry_href=_retry(registration, deferred))


def _retry(registration: str | None, deferred: int | None) -> str | None:
    """The same page again (its deferred hint kept), as a relative link."""
    if not registration:
        return None
    hint = f"&{DEFERRED_PARAMETER}={deferred}" if deferred is not None else ""
    return f"?{contacts.REGISTRATION_FIELD}={quote(registration)}{hint}"


def _store(settings: SignupSettings) -> DynamoDBCustomerStore:
    return _store_for(settings.customers_table_name, settings.contacts_table_name)


def _submit(
    settings: SignupSettings,
    store: SignupStore,
    now: datetime,
    registration: str,
    fields: Fields,
) -> dict[str, Any]:
    rules = contacts.field_rules(settings.signup_extra_fields)
    try:
        result = contacts.submit_signup(
            store, registration, fields, settings.signup_extra_fields, now
        )
    except (StorageUnavailableError, RegistrationPendingError) as error:
        # The buyer keeps what they typed and can simply send it again.
        pages.answer_for(error).report(error)
        form = contacts.validate_contact(fields, settings.signup_extra_fields)
        return pages.render_signup_form(
            rules,
            registration=registration,
            csrf_token=_single(fields.get(contacts.CSRF_FIELD)),
            values=form.values,
            status=503,
            notice=_PENDING_NOTICE
            if isinstance(error, RegistrationPendingError)
            else _STORAGE_NOTICE,
            retry_after_seconds=STORAGE_RETRY_SECONDS,
        )
    customer_ref = pseudonym(result.session.customer_key)
    if not result.completed:
        count_by(MetricName.SIGNUP_REJECTED, REASON_DIMENSION, SignupRejectionReason.INVALID_INPUT)
        # Field names only: what the buyer typed is personal data and never logged.
        logger.info(
            "sign-up form invalid",
            extra={"customer_ref": customer_ref, "invalid_fields": sorted(result.form.errors)},
        )
        return pages.render_signup_form(
            rules,
            registration=registration,
            csrf_token=result.session.csrf_token,
            values=result.form.values,
            errors=result.form.errors,
            status=400,
        )
    count(MetricName.SIGNUP_COMPLETED)
    logger.info(
        "sign-up completed",
        extra={"customer_ref": customer_ref, "product_code": result.session.product_code},
    )
    if settings.signup_complete_url:
        # Only the registration id, which the seller's app can look up; nothing personal.
        return responses.see_other(
            registration_location(settings.signup_complete_url, registration)
        )
    return render(pages.SIGNUP_COMPLETED)


def _single(values: list[str] | None) -> str:
    return values[0] if values and len(set(values)) == 1 else ""


startup.imports_done()
