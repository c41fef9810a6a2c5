"""The subscription lifecycle processor's settings."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from typing import NamedTuple

from fulfillment.contract import CUSTOMERS_TABLE_NAME, PRODUCT_CODES, SUBSCRIPTION_PRODUCT_CODES
from fulfillment.core import settings as check
from fulfillment.core.errors import ConfigurationError

ENVIRONMENT_KEYS = frozenset({CUSTOMERS_TABLE_NAME, PRODUCT_CODES, SUBSCRIPTION_PRODUCT_CODES})


class LifecycleSettings(NamedTuple):
    customers_table_name: str
    # Notifications for other products are ignored (counted), not failed.
    product_codes: frozenset[str]
    # Products without contract dimensions: their notifications never call GetEntitlements.
    subscription_product_codes: frozenset[str] = frozenset()


def load_lifecycle_settings(environ: Mapping[str, str]) -> LifecycleSettings:
    """Validate the lifecycle processor's variables; raise ConfigurationError on the first."""
    product_codes = check.product_codes(environ)
    return LifecycleSettings(
        customers_table_name=check.table_name(environ, CUSTOMERS_TABLE_NAME),
        product_codes=product_codes,
        subscription_product_codes=_subscription_product_codes(environ, product_codes),
    )


def _subscription_product_codes(
    environ: Mapping[str, str], product_codes: frozenset[str]
) -> frozenset[str]:
    """The optional subset of PRODUCT_CODES priced by subscription only; empty when unset."""
    raw = environ.get(SUBSCRIPTION_PRODUCT_CODES, "")
    codes = frozenset(code.strip() for code in raw.split(",")) - {""}
    if not codes <= product_codes:
        raise ConfigurationError(SUBSCRIPTION_PRODUCT_CODES, "names a code not in PRODUCT_CODES")
    return codes


@cache
def get_lifecycle_settings() -> LifecycleSettings:
    return load_lifecycle_settings(os.environ)
