"""Adapter: BatchMeterUsage (service `meteringmarketplace`), behind the Meter port.

One batch at a time. `UnprocessedRecords` are sent again within the call, with backoff, a
bounded number of times; throttling and AWS-side errors have had botocore's retries and leave
the batch pending for the next run. A refusal of the whole request for an invalid record (one
bad record fails every record with it) is split: each record is sent alone, so only the bad
one is quarantined. Every resend is the identical record.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from fulfillment.metering.records import MeterRecord, Outcome, outcomes, request

# Whole-request refusals that name a bad record: asking again cannot help.
INVALID_RECORD_ERRORS = frozenset(
    {
        "InvalidLicenseException",
        "InvalidUsageDimensionException",
        "InvalidTagException",
        "InvalidUsageAllocationsException",
        "InvalidCustomerIdentifierException",
        "InvalidProductCodeException",
        "TimestampOutOfBoundsException",
    }
)
UNPROCESSED_ATTEMPTS = 3
BACKOFF_SECONDS = 0.2

# (outcome, metering record id, error code) per record key
Answers = dict[tuple[str, str], tuple[Outcome, str | None, str | None]]


class MarketplaceMeter:
    def __init__(self, client: Any, sleep: Callable[[float], None] = time.sleep) -> None:
        self._client = client
        self._sleep = sleep
        self.calls = 0

    def send(self, batch: Sequence[MeterRecord]) -> Answers:
        answers: Answers = {r.key: (Outcome.PENDING, None, None) for r in batch}
        pending = list(batch)
        for attempt in range(UNPROCESSED_ATTEMPTS):
            if attempt:
                self._sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
            try:
                self.calls += 1
                answer = self._client.batch_meter_usage(**request(pending))
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", "ClientError"))
                if code not in INVALID_RECORD_ERRORS:
                    return _pending(answers, code)
                if len(pending) == 1:
                    answers[pending[0].key] = (Outcome.QUARANTINED, None, code)
                    return answers
                for record in pending:
                    answers.update(self.send([record]))
                return answers
            except BotoCoreError as exc:
                return _pending(answers, type(exc).__name__)
            for key, (outcome, record_id) in outcomes(pending, answer).items():
                answers[key] = (outcome, record_id, None)
            pending = [r for r in pending if answers[r.key][0] is Outcome.PENDING]
            if not pending:
                break
        return answers


def _pending(answers: Answers, code: str) -> Answers:
    return {
        key: (outcome, record_id, code if outcome is Outcome.PENDING else error)
        for key, (outcome, record_id, error) in answers.items()
    }
