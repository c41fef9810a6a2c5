"""The subscription lifecycle processor's settings."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from typing import NamedTuple

from fulfillment.contract import CUSTOMERS_TABLE_NAME, PRODUCT_CODES
from fulfillment.core import settings as check

ENVIRONMENT_KEYS = frozenset({CUSTOMERS_TABLE_NAME, PRODUCT_CODES})


class LifecycleSettings(NamedTuple):
    customers_table_name: str
    # Notifications for other products are ignored (counted), not failed.
    product_codes: frozenset[str]


def load_lifecycle_settings(environ: Mapping[str, str]) -> LifecycleSettings:
    """Validate the lifecycle processor's variables; raise ConfigurationError on the first."""
    return LifecycleSettings(
        customers_table_name=check.table_name(environ, CUSTOMERS_TABLE_NAME),
        product_codes=check.product_codes(environ),
    )


@cache
def get_lifecycle_settings() -> LifecycleSettings:
    return load_lifecycle_settings(os.environ)
