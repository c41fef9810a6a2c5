"""Runs a registration at most once per token, with Powertools idempotency on DynamoDB.

The key is the SHA-256 of the token under a fixed prefix, so the token itself is never
stored. A record outlives the token (valid about 4 h), so any resubmission within the token's
life replays the first answer instead of calling ResolveCustomer again.

Once the registration has produced its outcome, that outcome is the answer even when saving
the record fails (a 202 for a parked registration, never a 503). The record then stays in
progress: it holds the token for UNFINISHED_HOLD_SECONDS past the invocation, and the
recovery processor's replay of the parked registration completes it with the parked answer,
so a resubmission meanwhile waits instead of resolving the token a second time.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

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
from fulfillment.core.observability import logger
from fulfillment.registration.errors import RegistrationInProgressError
from fulfillment.registration.models import RegistrationOutcome, Submission

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_dynamodb import DynamoDBClient

# Stable across refactors: the default prefix is the function's module path.
KEY_PREFIX = "fulfillment#registration"
# Longer than the token's documented 4 h lifetime, so no resubmission ever runs twice.
RECORD_TTL_SECONDS = 5 * 3600
# An unfinished record (its invocation ended without saving or deleting it: the save failed
# after the registration was parked, or the function crashed) holds the token this much longer
# than the invocation, where Powertools alone would let the next submission run it again. The
# recovery queue redelivers a parked registration for 5 x 2 min before dead-lettering it (and
# alarms at 15 min), and its replay completes the record: 15 min covers that.
UNFINISHED_HOLD_SECONDS = 15 * 60
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


class _HeldContext:
    """The Lambda context as Powertools reads it (the time left, for the record's in-progress
    expiry), with UNFINISHED_HOLD_SECONDS added."""

    def __init__(self, context: LambdaContext) -> None:
        self._context = context

    def get_remaining_time_in_millis(self) -> int:
        return self._context.get_remaining_time_in_millis() + UNFINISHED_HOLD_SECONDS * 1000


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
        # The record's in-progress expiry: the time left, plus the hold. Without the context, a
        # timed-out invocation would leave INPROGRESS until the record's own expiry (5 h).
        self._config.register_lambda_context(cast("LambdaContext", _HeldContext(context)))
        produced: list[RegistrationOutcome] = []
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
                    produced=produced,
                )
                return outcome
            except IdempotencyAlreadyInProgressError:
                pause = _POLL_SECONDS[min(attempt, len(_POLL_SECONDS) - 1)]
                if time.monotonic() - started + pause > budget:
                    raise RegistrationInProgressError("same token is being registered") from None
                time.sleep(pause)
            except IdempotencyPersistenceLayerError as exc:
                if produced:
                    # The registration ran (stored, or parked): its answer stands; the record
                    # stays in progress until the hold ends or the replay completes it.
                    logger.warning(
                        "idempotency record not saved; the registration's answer stands",
                        extra={"deferred": produced[0].deferred, "error": _cause(exc)},
                    )
                    return produced[0]
                raise StorageUnavailableError("idempotency store") from exc
        raise RegistrationInProgressError("same token is being registered")

    @staticmethod
    def key_for(token: str) -> str:
        """The token's record key as Powertools computes it (the prefix, the SHA-256 of the
        JSON-encoded value at ``event_key_jmespath``); never the token itself."""
        digest = hashlib.sha256(json.dumps(token, sort_keys=True).encode()).hexdigest()
        return f"{KEY_PREFIX}#{digest}"

    def _run(
        self,
        *,
        submission: dict[str, Any],
        request_id: str,
        produced: list[RegistrationOutcome],
    ) -> RegistrationOutcome:
        outcome = self._register(submission["token"], request_id, submission["free_trial"])
        produced.append(outcome)
        return outcome


def _cause(exc: IdempotencyPersistenceLayerError) -> str:
    """The bounded name of what failed underneath (an AWS error code or an exception class)."""
    cause = exc.__cause__
    code = getattr(cause, "response", {}).get("Error", {}).get("Code") if cause else None
    return str(code or type(cause).__name__)
