"""Adapter (DynamoDB): completes the idempotency record of a replayed registration.

The fulfillment function keeps each token's answer in a Powertools idempotency record
(registration/idempotency.py). When it parked a registration but could not save that record
(DynamoDB failing on every table, or no time left after parking), the record stays in
progress. The replay completes it with the parked answer, so every resubmission of the token
from then on replays that answer instead of resolving the token again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from fulfillment.contract import IDEMPOTENCY
from fulfillment.core.errors import StorageUnavailableError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# Powertools' DynamoDBPersistenceLayer defaults, which registration/idempotency.py keeps; a
# record Powertools reads back is the proof (tests/integration/test_fault_injection.py).
_STATUS, _DATA = "status", "data"
_INPROGRESS, _COMPLETED = "INPROGRESS", "COMPLETED"


class DynamoDBIdempotencyRecords:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def complete(self, key: str, outcome: str) -> bool:
        """Complete the record ``key`` with ``outcome`` if it is still in progress; True when
        this call did. A completed record (the function saved it after all, or an earlier
        delivery did) or one gone (expired) is left as it is."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key={IDEMPOTENCY.partition_key: {"S": key}},
                UpdateExpression="SET #status = :completed, #data = :outcome",
                ConditionExpression="#status = :in_progress",
                ExpressionAttributeNames={"#status": _STATUS, "#data": _DATA},
                ExpressionAttributeValues={
                    ":completed": {"S": _COMPLETED},
                    ":in_progress": {"S": _INPROGRESS},
                    ":outcome": {"S": outcome},
                },
            )
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "ClientError"))
            if code == "ConditionalCheckFailedException":
                return False
            raise StorageUnavailableError(code) from exc
        except BotoCoreError as exc:
            raise StorageUnavailableError(type(exc).__name__) from exc
        return True
