"""The metering functions' settings (the usage intake and the hourly run)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import cache
from typing import NamedTuple

from fulfillment.contract import (
    CUSTOMERS_TABLE_NAME,
    METERING_DIMENSIONS,
    METERING_DRY_RUN,
    PRODUCT_CODES,
    USAGE_TABLE_NAME,
)
from fulfillment.core import settings as check
from fulfillment.core.errors import ConfigurationError

ENVIRONMENT_KEYS = frozenset(
    {CUSTOMERS_TABLE_NAME, USAGE_TABLE_NAME, PRODUCT_CODES, METERING_DIMENSIONS, METERING_DRY_RUN}
)
# BatchMeterUsage's UsageDimension: 1 to 255 characters; a comma separates them here.
_DIMENSION = re.compile(r"[^,\s][^,]{0,254}")


class MeteringSettings(NamedTuple):
    customers_table_name: str
    usage_table_name: str
    product_codes: frozenset[str]
    dimensions: tuple[str, ...]
    dry_run: bool = False


def load_metering_settings(environ: Mapping[str, str]) -> MeteringSettings:
    """Validate the metering variables; raise ConfigurationError on the first bad one."""
    dimensions = tuple(d.strip() for d in check.required(environ, METERING_DIMENSIONS).split(","))
    if not all(_DIMENSION.fullmatch(d) for d in dimensions) or len(set(dimensions)) < len(
        dimensions
    ):
        raise ConfigurationError(METERING_DIMENSIONS, "lists an empty, too long or repeated name")
    dry_run = environ.get(METERING_DRY_RUN, "false").strip().lower()
    if dry_run not in {"true", "false"}:
        raise ConfigurationError(METERING_DRY_RUN, "is not true or false")
    return MeteringSettings(
        customers_table_name=check.table_name(environ, CUSTOMERS_TABLE_NAME),
        usage_table_name=check.table_name(environ, USAGE_TABLE_NAME),
        product_codes=check.product_codes(environ),
        dimensions=dimensions,
        dry_run=dry_run == "true",
    )


@cache
def get_metering_settings() -> MeteringSettings:
    return load_metering_settings(os.environ)
