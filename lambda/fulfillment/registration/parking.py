"""Adapter (SQS): the recovery queue that keeps resolved registrations whose writes failed.

The fulfillment function sends to it only when DynamoDB refused the session or customer
write (or the deadline left no time for it); fulfillment.recovery replays the messages.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from fulfillment.core import deadline
from fulfillment.core.errors import DeadlineExceededError
from fulfillment.core.ids import pseudonym
from fulfillment.core.observability import logger
from fulfillment.customers.models import ParkedRegistration
from fulfillment.registration.errors import RecoveryUnavailableError


class SqsSendClient(Protocol):
    """The one call made on boto3's SQS client."""

    def send_message(self, *, QueueUrl: str, MessageBody: str) -> Mapping[str, Any]: ...


class SqsRecoveryQueue:
    def __init__(self, client: Callable[[], SqsSendClient], queue_url: str) -> None:
        """``client``: a factory, called on the first park only (no SQS client on cold start)."""
        self._client = client
        self._url = queue_url

    def park(self, registration: ParkedRegistration, *, reason: str) -> None:
        # Never the registration id (it opens the sign-up page) nor the customer in clear.
        log = {
            "customer_ref": pseudonym(registration.customer.customer_key),
            "product_code": registration.product_code,
            "reason": reason,
        }
        # The registration is resolved: its last calls may use the deadline's grace.
        deadline.grace()
        try:
            answer = self._client().send_message(
                QueueUrl=self._url, MessageBody=registration.to_message()
            )
        except (ClientError, BotoCoreError, DeadlineExceededError) as exc:
            code = _error_code(exc)
            logger.error("recovery queue refused a registration", extra={**log, "error": code})
            raise RecoveryUnavailableError(code) from exc
        logger.warning(
            "registration write failed; parked on the recovery queue",
            extra={**log, "message_id": answer.get("MessageId")},
        )


def _error_code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__
