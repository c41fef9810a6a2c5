"""Runs a registration at most once per token, with Powertools idempotency on DynamoDB.

The key is the SHA-256 of the token under a fixed prefix, so the token itself is never
stored. A record outlives the token (valid about 4 h), so any resubmission within the token's
life replays the first answer instead of calling ResolveCustomer again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
)
from aws_lambda_powertools.utilities.idempotency.serialization.custom_dict import (
    CustomDictSerializer,
)

from fulfillment.core.errors import StorageUnavailableError
from fulfillment.registration.errors import RegistrationInProgressError
from fulfillment.registration.models import RegistrationOutcome, Submission

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_dynamodb import DynamoDBClient

# Stable across refactors: the default prefix is the function's module path.
KEY_PREFIX = "fulfillment#registration"
# Longer than the token's documented 4 h lifetime, so no resubmission ever runs twice.
RECORD_TTL_SECONDS = 5 * 3600
# How long a concurrent submission of the same token waits for the first one's answer.
IN_PROGRESS_WAIT_SECONDS = 6.0
_POLL_SECONDS = (0.1, 0.2, 0.3, 0.5)
# Keep this much of the invocation for answering when waiting on another request.
_RESERVED_MILLIS = 3000

# (token, request id, free trial) -> outcome
RegisterFunction = Callable[[str, str, bool], RegistrationOutcome]
# The stored outcome is the NamedTuple's fields as a JSON object (the same shape the
# dataclass serializer wrote, so records written before still replay).
_OUTCOME_SERIALIZER = CustomDictSerializer(
    to_dict=RegistrationOutcome._asdict, from_dict=lambda data: RegistrationOutcome(**data)
)


class OncePerToken:
    def __init__(self, register: RegisterFunction, table_name: str, client: DynamoDBClient) -> None:
        self._register = register
        self._config = IdempotencyConfig(
            event_key_jmespath="token",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=RECORD_TTL_SECONDS,
            hash_function="sha256",
        )
        persistence = DynamoDBPersistenceLayer(table_name=table_name, boto3_client=client)
        self._once = idempotent_function(
            self._run,
            data_keyword_argument="submission",
            persistence_store=persistence,
            config=self._config,
            output_serializer=_OUTCOME_SERIALIZER,
            key_prefix=KEY_PREFIX,
        )

    def register(
        self, submission: Submission, request_id: str, context: LambdaContext
    ) -> RegistrationOutcome:
        """The outcome of the first registration of the submission's token, running it if
        there was none (keyed on the token alone: a resubmission gets the first outcome)."""
        # Without the context, a timed-out invocation would leave INPROGRESS until expiry.
        self._config.register_lambda_context(context)
        started = time.monotonic()
        budget = min(
            IN_PROGRESS_WAIT_SECONDS,
            max(context.get_remaining_time_in_millis() - _RESERVED_MILLIS, 0) / 1000,
        )
        for attempt in range(1_000):
            try:
                outcome: RegistrationOutcome = self._once(
                    submission={"token": submission.token, "free_trial": submission.free_trial},
                    request_id=request_id,
                )
                return outcome
            except IdempotencyAlreadyInProgressError:
                pause = _POLL_SECONDS[min(attempt, len(_POLL_SECONDS) - 1)]
                if time.monotonic() - started + pause > budget:
                    raise RegistrationInProgressError("same token is being registered") from None
                time.sleep(pause)
            except IdempotencyPersistenceLayerError as exc:
                raise StorageUnavailableError("idempotency store") from exc
        raise RegistrationInProgressError("same token is being registered")

    def _run(self, *, submission: dict[str, Any], request_id: str) -> RegistrationOutcome:
        return self._register(submission["token"], request_id, submission["free_trial"])
