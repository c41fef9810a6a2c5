"""The seller hand-off's settings: the customers table, read-only."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from typing import NamedTuple

from fulfillment.contract import CUSTOMERS_TABLE_NAME
from fulfillment.core import settings as check

ENVIRONMENT_KEYS = frozenset({CUSTOMERS_TABLE_NAME})


class HandoffSettings(NamedTuple):
    customers_table_name: str


def load_handoff_settings(environ: Mapping[str, str]) -> HandoffSettings:
    return HandoffSettings(customers_table_name=check.table_name(environ, CUSTOMERS_TABLE_NAME))


@cache
def get_handoff_settings() -> HandoffSettings:
    return load_handoff_settings(os.environ)
