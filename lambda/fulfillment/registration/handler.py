"""Entry point of the fulfillment URL (API Gateway REST, Lambda proxy integration).

GET / without a token answers the page AWS checks; a token (form POST, or query string on
GET and POST) is registered and answered with a 303 to the sign-up page.

Dependencies: ``lambda_handler(event, context, registrar=...)`` takes any ``Registrations``
(a ``Registrar`` built with its own settings, clients and clock, or a fake). Without one, as
Lambda calls it, the handler uses the execution environment's own ``Registrar``, built on the
first request that needs it from the environment's settings and the shared clients
(core/aws.py), once per container.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from fulfillment.contract import MetricName
from fulfillment.core import aws, deadline, responses, startup
from fulfillment.core.observability import count, logger, metrics
from fulfillment.core.redirects import builtin_signup_path, registration_location
from fulfillment.customers.store import DynamoDBCustomerStore
from fulfillment.registration.errors import MissingTokenError
from fulfillment.registration.idempotency import OncePerToken
from fulfillment.registration.intake import read_submission
from fulfillment.registration.marketplace import MeteringMarketplace
from fulfillment.registration.models import RegistrationOutcome, Submission
from fulfillment.registration.parking import SqsRecoveryQueue, SqsSendClient
from fulfillment.registration.settings import Settings, get_settings
from fulfillment.registration.use_case import open_session, register

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_meteringmarketplace import MarketplaceMeteringClient

# A replayed answer whose session expires sooner than this gets a fresh session.
SESSION_REFRESH_MARGIN_SECONDS = 60


def utc_now() -> datetime:
    return datetime.now(UTC)


class Registrations(Protocol):
    """What the handler needs of a registrar: its settings, and the outcome for a token."""

    settings: Settings

    def registration_for(
        self, submission: Submission, request_id: str, context: LambdaContext
    ) -> RegistrationOutcome: ...


class Registrar:
    """The registration use case wired to its adapters.

    ``recovery_sqs`` is a factory, called on the first parked registration only (no SQS
    client on the cold path). ``from_settings`` wires it as the deployed function is.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        dynamodb: DynamoDBClient,
        metering: MarketplaceMeteringClient,
        recovery_sqs: Callable[[], SqsSendClient],
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.customers = DynamoDBCustomerStore(dynamodb, settings.customers_table_name)
        self.marketplace = MeteringMarketplace(metering)
        self.recovery = SqsRecoveryQueue(recovery_sqs, settings.recovery_queue_url)
        self.once = OncePerToken(self._register, settings.idempotency_table_name, dynamodb)

    @classmethod
    def from_settings(cls, settings: Settings) -> Registrar:
        """The registrar for ``settings`` with the execution environment's shared clients."""
        return cls(
            settings,
            dynamodb=aws.dynamodb(),
            metering=aws.metering(settings.marketplace_region),
            recovery_sqs=aws.recovery_sqs,
        )

    def _register(self, token: str, request_id: str, free_trial: bool) -> RegistrationOutcome:
        return register(
            token,
            marketplace=self.marketplace,
            customers=self.customers,
            recovery=self.recovery,
            product_codes=self.settings.product_codes,
            now=self.clock(),
            session_ttl_seconds=self.settings.session_ttl_seconds,
            request_id=request_id,
            free_trial=free_trial,
            idempotency_key=self.once.key_for(token),
        )

    def registration_for(
        self, submission: Submission, request_id: str, context: LambdaContext
    ) -> RegistrationOutcome:
        """The first outcome for the submission's token: a resubmission gets it again, its
        free-trial choice included, whatever the resubmission posts."""
        outcome = self.once.register(submission, request_id, context)
        now = self.clock()
        replayed = outcome.registered_by_request != request_id
        if (
            replayed
            and outcome.session_expires_at - now.timestamp() < SESSION_REFRESH_MARGIN_SECONDS
        ):
            # A resubmission after the first session expired: same customer, new session,
            # still no second ResolveCustomer call.
            outcome = open_session(
                outcome.customer_key,
                outcome.product_code,
                customers=self.customers,
                now=now,
                session_ttl_seconds=self.settings.session_ttl_seconds,
                new_customer=outcome.new_customer,
                request_id=outcome.registered_by_request,
            )._replace(free_trial=outcome.free_trial)
        return outcome


# Keyed on the settings: one Registrar per container (whose settings never change).
@cache
def _registrar(settings: Settings) -> Registrar:
    return Registrar.from_settings(settings)


# log_event=False explicitly: POWERTOOLS_LOGGER_LOG_EVENT=true would otherwise log the whole
# event, and with it the registration token or the buyer's contact details.
@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True, log_event=False
)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(
    event: dict[str, Any], context: LambdaContext, *, registrar: Registrations | None = None
) -> dict[str, Any]:
    request_id = (event.get("requestContext") or {}).get("requestId") or context.aws_request_id
    submission: Submission | None = None
    try:
        submission = read_submission(event)
        if submission is None:
            if event.get("httpMethod") == "GET":
                # Imported where a page is rendered: a successful registration is a body-less
                # 303, so its cold start skips the page table and its CSS hash.
                from fulfillment.registration import pages

                return pages.render(pages.LANDING)
            raise MissingTokenError("no registration token in the request")
        if registrar is None:
            registrar = _registrar(get_settings())
        with deadline.budget(context):
            outcome = registrar.registration_for(submission, request_id, context)
        location = _location(registrar.settings, outcome, event)
        if outcome.deferred:
            from fulfillment.registration import pages

            return pages.render(pages.DEFERRED, continue_href=location)
        return responses.see_other(location)
    except Exception as error:  # every failure becomes a page for a person
        from fulfillment.registration import pages

        # Logged and counted once, never with the token or customer identifiers.
        answer = pages.answer_for(error)
        answer.report(error)
        return pages.render(answer.page, reference=request_id, submission=submission)


def _location(
    settings: Settings,
    outcome: RegistrationOutcome,
    event: dict[str, Any],
) -> str:
    duplicate = outcome.registered_by_request != _current_request_id()
    if duplicate:
        count(MetricName.DUPLICATE_SUBMISSION)
    elif outcome.deferred:
        count(MetricName.REGISTRATION_DEFERRED)
    else:
        count(MetricName.REGISTRATION_SUCCEEDED)
        count(MetricName.NEW_CUSTOMER if outcome.new_customer else MetricName.RETURNING_CUSTOMER)
    logger.info(
        "registration handed off",
        extra={
            "customer_ref": outcome.customer_ref,
            "product_code": outcome.product_code,
            "new_customer": outcome.new_customer,
            "duplicate_submission": duplicate,
            "deferred": outcome.deferred,
            "free_trial": outcome.free_trial,
        },
    )
    builtin = builtin_signup_path(event)
    target = settings.registration_url or builtin
    if outcome.free_trial and settings.trial_registration_url:
        target = settings.trial_registration_url
    # The built-in sign-up page learns that the registration may still be being recorded, so
    # it answers "still finishing" instead of "expired" until the replay lands.
    deferred_until = outcome.session_expires_at if outcome.deferred and target == builtin else None
    return registration_location(target, outcome.session_id, deferred_until=deferred_until)


def _current_request_id() -> str:
    return str(logger.get_correlation_id() or "")


startup.imports_done()
