"""The SQS queues of the stack, built one way."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs
from constructs import Construct

# SQS's maximum: a message an operator has to look at waits two weeks.
RETENTION = Duration.days(14)


def encrypted_queue(
    scope: Construct,
    construct_id: str,
    *,
    visibility_timeout: Duration | None = None,
    dead_letter_queue: sqs.DeadLetterQueue | None = None,
) -> sqs.Queue:
    """An SSE-SQS queue that refuses plain HTTP. SQS-managed keys: EventBridge and SNS can
    deliver to it without a key policy of ours, and consumers need no KMS permission."""
    return sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=RETENTION,
        visibility_timeout=visibility_timeout,
        dead_letter_queue=dead_letter_queue,
    )
