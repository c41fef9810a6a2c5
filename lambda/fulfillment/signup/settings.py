"""The sign-up page's settings: the only function that gets the contacts table."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from functools import cache
from typing import NamedTuple

from fulfillment.contract import (
    CONTACTS_TABLE_NAME,
    CUSTOMERS_TABLE_NAME,
    DEFAULT_FIELD_LENGTH,
    EXTRA_FIELD_NAME_PATTERN,
    MAX_EXTRA_FIELDS,
    MAX_FIELD_LENGTH,
    MAX_LABEL_LENGTH,
    RESERVED_FIELD_NAMES,
    SIGNUP_COMPLETE_URL,
    SIGNUP_EXTRA_FIELDS,
)
from fulfillment.core import settings as check
from fulfillment.core.errors import ConfigurationError

ENVIRONMENT_KEYS = frozenset(
    {CUSTOMERS_TABLE_NAME, CONTACTS_TABLE_NAME, SIGNUP_COMPLETE_URL, SIGNUP_EXTRA_FIELDS}
)


class ExtraField(NamedTuple):
    """A seller-defined field of the sign-up form."""

    name: str
    label: str
    required: bool
    max_length: int


class SignupSettings(NamedTuple):
    customers_table_name: str
    contacts_table_name: str
    signup_complete_url: str | None
    signup_extra_fields: tuple[ExtraField, ...]


def load_signup_settings(environ: Mapping[str, str]) -> SignupSettings:
    """Validate the sign-up page's variables; raise ConfigurationError naming the first fault."""
    return SignupSettings(
        customers_table_name=check.table_name(environ, CUSTOMERS_TABLE_NAME),
        contacts_table_name=check.table_name(environ, CONTACTS_TABLE_NAME),
        signup_complete_url=check.redirect_target(environ, SIGNUP_COMPLETE_URL),
        signup_extra_fields=_extra_fields(environ),
    )


@cache
def get_signup_settings() -> SignupSettings:
    return load_signup_settings(os.environ)


def _extra_fields(environ: Mapping[str, str]) -> tuple[ExtraField, ...]:
    """SIGNUP_EXTRA_FIELDS: a JSON list of {"name", "label", "required", "max_length"}."""
    raw = environ.get(SIGNUP_EXTRA_FIELDS, "").strip()
    if not raw:
        return ()
    try:
        items = json.loads(raw)
    except ValueError:
        raise ConfigurationError(SIGNUP_EXTRA_FIELDS, "is not valid JSON") from None
    if not isinstance(items, list) or len(items) > MAX_EXTRA_FIELDS:
        raise ConfigurationError(
            SIGNUP_EXTRA_FIELDS, f"must be a JSON list of at most {MAX_EXTRA_FIELDS} fields"
        )
    fields: list[ExtraField] = []
    for item in items:
        fields.append(_extra_field(item, taken={field.name for field in fields}))
    return tuple(fields)


def _extra_field(item: object, *, taken: set[str]) -> ExtraField:
    if not isinstance(item, dict):
        raise ConfigurationError(SIGNUP_EXTRA_FIELDS, "lists something that is not an object")
    name, label = item.get("name"), item.get("label")
    required, max_length = item.get("required", False), item.get("max_length", DEFAULT_FIELD_LENGTH)
    if not isinstance(name, str) or not re.fullmatch(EXTRA_FIELD_NAME_PATTERN, name):
        raise ConfigurationError(
            SIGNUP_EXTRA_FIELDS, "has a field name that is not lower_snake_case (max 40)"
        )
    if name in RESERVED_FIELD_NAMES or name in taken:
        raise ConfigurationError(SIGNUP_EXTRA_FIELDS, f"repeats or reserves the name {name!r}")
    if not isinstance(label, str) or not 0 < len(label.strip()) <= MAX_LABEL_LENGTH:
        raise ConfigurationError(SIGNUP_EXTRA_FIELDS, f"field {name!r} needs a label")
    if not isinstance(required, bool):
        raise ConfigurationError(SIGNUP_EXTRA_FIELDS, f"field {name!r}: required is a boolean")
    if (
        not isinstance(max_length, int)
        or isinstance(max_length, bool)
        or not 1 <= max_length <= MAX_FIELD_LENGTH
    ):
        raise ConfigurationError(
            SIGNUP_EXTRA_FIELDS, f"field {name!r}: max_length must be 1 to {MAX_FIELD_LENGTH}"
        )
    return ExtraField(name, label.strip(), required, max_length)
