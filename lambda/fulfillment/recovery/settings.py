"""The recovery processor's settings: the customers table it replays parked registrations into,
and the idempotency table whose records of parked registrations it completes."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from typing import NamedTuple

from fulfillment.contract import CUSTOMERS_TABLE_NAME, IDEMPOTENCY_TABLE_NAME
from fulfillment.core import settings as check

ENVIRONMENT_KEYS = frozenset({CUSTOMERS_TABLE_NAME, IDEMPOTENCY_TABLE_NAME})


class RecoverySettings(NamedTuple):
    customers_table_name: str
    idempotency_table_name: str


def load_recovery_settings(environ: Mapping[str, str]) -> RecoverySettings:
    """Validate the recovery processor's variables; raise ConfigurationError on the first."""
    return RecoverySettings(
        customers_table_name=check.table_name(environ, CUSTOMERS_TABLE_NAME),
        idempotency_table_name=check.table_name(environ, IDEMPOTENCY_TABLE_NAME),
    )


@cache
def get_recovery_settings() -> RecoverySettings:
    return load_recovery_settings(os.environ)
