"""Entry point of the subscription lifecycle processor (SQS: Marketplace EventBridge events
and legacy SNS notifications on one queue).

Each record is parsed, applied to its customer and counted by event type and outcome. A
record that fails (a body that is not a notification; DynamoDB, GetEntitlements or
GetAgreementTerms unavailable) fails alone: Powertools reports it as a batch item failure,
SQS delivers it again, and after the queue's maxReceiveCount it moves to the dead-letter
queue. A Marketplace event of a
detail type not handled here (the rules subscribe to none, but AWS adds types) is
acknowledged: logged at INFO, counted as ignored, never retried.

`LifecycleProcessor` holds the dependencies. Lambda passes none, so `lambda_handler` uses
`default_processor()`, built from the environment on first use, once per execution
environment; tests pass their own (`lambda_handler(event, context, processor=...)`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from fulfillment.contract import (
    EVENT_TYPE_DIMENSION,
    OUTCOME_DIMENSION,
    UNKNOWN_EVENT_TYPE,
    LifecycleOutcome,
    MetricName,
)
from fulfillment.core import aws, startup
from fulfillment.core.errors import StorageUnavailableError
from fulfillment.core.ids import pseudonym
from fulfillment.core.observability import count_with, logger, metrics
from fulfillment.lifecycle.entitlements import ENTITLEMENT_REGION, MarketplaceEntitlements
from fulfillment.lifecycle.notifications import (
    LifecycleNotification,
    MalformedNotificationError,
    UnhandledDetailTypeError,
    parse_notification,
)
from fulfillment.lifecycle.settings import get_lifecycle_settings
from fulfillment.lifecycle.store import DynamoDBLifecycleStore
from fulfillment.lifecycle.subscriptions import (
    AgreementTermsSource,
    AgreementTermsUnavailableError,
    CustomerNotIdentifiableError,
    Entitlements,
    EntitlementsUnavailableError,
    LifecycleStore,
    apply_notification,
)
from fulfillment.lifecycle.terms import AGREEMENT_REGION, MarketplaceAgreementTerms


def _count(event_type: str, outcome: LifecycleOutcome) -> None:
    count_with(
        MetricName.LIFECYCLE_NOTIFICATION,
        {EVENT_TYPE_DIMENSION: event_type, OUTCOME_DIMENSION: outcome},
    )


def _safe_fields(notification: LifecycleNotification) -> dict[str, Any]:
    """What a log line may say about a notification: no customer identifiers in clear."""
    customer = notification.license_arn or notification.customer_identifier
    return {
        "event_type": str(notification.event_type),
        "format": str(notification.format),
        "role": notification.role,
        "notification_id": notification.message_id,
        "event_time": notification.occurred_at.isoformat(),
        "product_code": notification.product_code,
        "agreement_id": notification.agreement_id,
        "customer_ref": pseudonym(customer) if customer else None,
    }


class LifecycleProcessor:
    """The lifecycle use case wired to its store, the entitlements, the agreement terms and the
    products served."""

    def __init__(
        self,
        *,
        store: LifecycleStore,
        entitlements: Entitlements,
        terms_source: AgreementTermsSource,
        product_codes: frozenset[str],
    ) -> None:
        self.store = store
        self.entitlements = entitlements
        self.terms_source = terms_source
        self.product_codes = product_codes

    @classmethod
    def from_environment(cls) -> LifecycleProcessor:
        """The deployed wiring: the settings' table and products, the shared boto3 clients."""
        settings = get_lifecycle_settings()
        return cls(
            store=DynamoDBLifecycleStore(aws.dynamodb(), settings.customers_table_name),
            entitlements=MarketplaceEntitlements(
                aws.entitlement(ENTITLEMENT_REGION), settings.subscription_product_codes
            ),
            terms_source=MarketplaceAgreementTerms(aws.agreement(AGREEMENT_REGION)),
            product_codes=settings.product_codes,
        )

    def handle(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        """Apply every record of an SQS batch; the answer names the records that failed."""
        return dict(
            process_partial_response(
                event=event,
                record_handler=self.apply,
                processor=BatchProcessor(event_type=EventType.SQS),
                context=context,
            )
        )

    def apply(self, record: SQSRecord) -> None:
        """Apply one record's notification; an exception fails this record alone."""
        try:
            notification = parse_notification(record.body)
        except UnhandledDetailTypeError as unhandled:
            # Acknowledged: retrying cannot make it one this function handles, and a dead-
            # lettered advisory would page on-call for nothing. Logged once, counted.
            logger.info(
                "lifecycle event of a detail type not handled, acknowledged",
                extra={
                    "message_id": record.message_id,
                    "detail_type": unhandled.detail_type,
                    "notification_id": unhandled.message_id,
                },
            )
            _count(UNKNOWN_EVENT_TYPE, LifecycleOutcome.IGNORED)
            return
        except MalformedNotificationError as error:
            # Never the body: only what identifies the message and why it was refused.
            logger.error(
                "lifecycle message is not a notification",
                extra={
                    "message_id": record.message_id,
                    "reason": str(error.reason),
                    "field": error.field,
                    "body_length": len(record.body),
                    "receive_count": record.attributes.approximate_receive_count,
                },
            )
            _count(UNKNOWN_EVENT_TYPE, LifecycleOutcome.FAILED)
            raise
        try:
            outcome = apply_notification(
                notification,
                store=self.store,
                entitlements=self.entitlements,
                terms_source=self.terms_source,
                product_codes=self.product_codes,
                now=datetime.now(UTC),
            )
        except (
            StorageUnavailableError,
            EntitlementsUnavailableError,
            AgreementTermsUnavailableError,
        ) as error:
            logger.error(
                "lifecycle notification not recorded, SQS will deliver it again",
                extra={
                    **_safe_fields(notification),
                    "message_id": record.message_id,
                    "error": type(error).__name__,
                    "error_code": str(error),
                    "receive_count": record.attributes.approximate_receive_count,
                },
            )
            _count(notification.event_type, LifecycleOutcome.FAILED)
            raise
        except CustomerNotIdentifiableError:
            logger.error(
                "lifecycle notification names no customer",
                extra={**_safe_fields(notification), "message_id": record.message_id},
            )
            _count(notification.event_type, LifecycleOutcome.FAILED)
            raise
        _count(notification.event_type, outcome)
        logger.info(
            "lifecycle notification handled",
            extra={**_safe_fields(notification), "outcome": str(outcome)},
        )


@cache
def default_processor() -> LifecycleProcessor:
    """The processor Lambda's invocations use: built on first use, once per container."""
    return LifecycleProcessor.from_environment()


# log_event=False explicitly, as on every handler: POWERTOOLS_LOGGER_LOG_EVENT=true would
# otherwise log whole batches (the stack never sets it).
@logger.inject_lambda_context(clear_state=True, log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(
    event: dict[str, Any],
    context: LambdaContext,
    *,
    processor: LifecycleProcessor | None = None,
) -> dict[str, Any]:
    """Process one SQS batch with ``processor`` (default: ``default_processor()``)."""
    return (processor or default_processor()).handle(event, context)


startup.imports_done()
