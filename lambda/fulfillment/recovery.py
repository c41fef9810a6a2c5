"""Entry point of the recovery processor (SQS: registrations parked by the fulfillment function).

A registration whose session or customer write failed after ResolveCustomer succeeded waits on
the recovery queue; this function writes both, each at most once (a redelivered message
changes nothing). A record that fails (DynamoDB still unavailable, a message that is not a
parked registration) fails alone: SQS delivers it again, and after the queue's
maxReceiveCount it moves to the dead-letter queue, which is alarmed: a paying customer is
not recorded until someone redrives it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from fulfillment import aws, startup
from fulfillment.customers import DynamoDBCustomerStore
from fulfillment.errors import StorageUnavailableError
from fulfillment.models import MalformedParkedRegistrationError, ParkedRegistration
from fulfillment.observability import MetricName, count, logger, metrics, pseudonym
from fulfillment.registration import replay
from fulfillment.settings import get_recovery_settings


@cache
def _store() -> DynamoDBCustomerStore:
    return DynamoDBCustomerStore(aws.dynamodb(), get_recovery_settings().customers_table_name)


def _handle(record: SQSRecord) -> None:
    receive_count = record.attributes.approximate_receive_count
    try:
        parked = ParkedRegistration.from_message(record.body)
    except MalformedParkedRegistrationError as error:
        # Never the body: only what identifies the message and why it was refused.
        logger.error(
            "recovery message is not a parked registration",
            extra={
                "message_id": record.message_id,
                "problem": str(error),
                "receive_count": receive_count,
            },
        )
        raise
    log = {
        "message_id": record.message_id,
        "customer_ref": pseudonym(parked.customer.customer_key),
        "product_code": parked.product_code,
        "registered_by_request": parked.request_id,
        "receive_count": receive_count,
    }
    try:
        applied = replay(parked, customers=_store())
    except StorageUnavailableError as error:
        logger.error(
            "parked registration not recorded yet, SQS will deliver it again",
            extra={**log, "error_code": str(error)},
        )
        raise
    if applied:
        count(MetricName.REGISTRATION_RECOVERED)
    logger.info("parked registration recorded", extra={**log, "already_applied": not applied})


@logger.inject_lambda_context(clear_state=True, log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(
        process_partial_response(
            event=event,
            record_handler=_handle,
            processor=BatchProcessor(event_type=EventType.SQS),
            context=context,
        )
    )


startup.imports_done()
