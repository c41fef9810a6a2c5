"""The six functions by handler path, and the environment variables each one reads.

The variables come from each capability's settings module (its ENVIRONMENT_KEYS, which its
load function reads: tests/unit/test_settings.py), the paths from the contract.
"""

from __future__ import annotations

from fulfillment import contract
from fulfillment.events import settings as events
from fulfillment.handoff import settings as handoff
from fulfillment.lifecycle import settings as lifecycle
from fulfillment.recovery import settings as recovery
from fulfillment.registration import settings as registration
from fulfillment.signup import settings as signup

ENVIRONMENT_KEYS: dict[str, frozenset[str]] = {
    contract.FULFILLMENT_HANDLER: registration.ENVIRONMENT_KEYS,
    contract.SIGNUP_HANDLER: signup.ENVIRONMENT_KEYS,
    contract.HANDOFF_HANDLER: handoff.ENVIRONMENT_KEYS,
    contract.PUBLISHER_HANDLER: events.ENVIRONMENT_KEYS,
    contract.LIFECYCLE_HANDLER: lifecycle.ENVIRONMENT_KEYS,
    contract.RECOVERY_HANDLER: recovery.ENVIRONMENT_KEYS,
}
