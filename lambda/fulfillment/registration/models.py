"""What the fulfillment URL works with: the buyer's submission and a registration's outcome."""

from __future__ import annotations

import json
from typing import NamedTuple


class Submission(NamedTuple):
    """What the buyer's browser brought: only the token and whether it was a free-trial offer."""

    token: str
    free_trial: bool


class RegistrationOutcome(NamedTuple):
    """The result of one registration, replayed as-is to resubmissions of the same token."""

    session_id: str
    session_expires_at: int
    customer_key: str
    customer_ref: str
    product_code: str
    new_customer: bool
    registered_by_request: str
    # True: the customer or session write failed and the registration waits on the recovery
    # queue; the buyer is told it is being finished (202), not sent on yet.
    deferred: bool = False
    # The first submission's offer type (x-amzn-marketplace-offer-type=free-trial): part of the
    # outcome, so a resubmission is sent to the same target whatever it posts.
    free_trial: bool = False

    def as_record(self) -> str:
        """The outcome as its idempotency record holds it: a JSON object of the fields (what
        Powertools writes from idempotency.py's serializer, read back by the same)."""
        return json.dumps(self._asdict(), sort_keys=True)
