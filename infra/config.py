"""Deploy-time settings: cdk.json context (overridable with `cdk -c key=value`), parsed once.

Each field is read from the context key that is its name in camelCase (``product_codes`` from
``productCodes``). Context given on the command line arrives as strings, so every value is
parsed here, and a missing or invalid one stops synth with a message that names its key.
Fields are checked in the order they are declared; the first error is the one reported.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Annotated, Any, Protocol
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, ValidationInfo
from pydantic.alias_generators import to_camel

from fulfillment import contract

_PRODUCT_CODE = re.compile(r"[-a-zA-Z0-9/=:_.@]{1,255}")
_REGION = re.compile(r"[a-z]{2}(-gov)?-[a-z]+-\d{1,2}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_CERTIFICATE_ARN = re.compile(r"arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}")
_FIELD_NAME = re.compile(contract.EXTRA_FIELD_NAME_PATTERN)
# CloudWatch Logs accepts only these retention periods.
# fmt: off
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
)
# fmt: on
# cdk.json ships with these so that `make synth` works on a clean clone; `make deploy` passes
# -c deploy=true, and a deployment with them would turn every buyer away.
EXAMPLE_PRODUCT_PREFIX = "prod-example"
EXAMPLE_HOST_SUFFIXES = ("example.com", "example.net", "example.org", ".example")


class ConfigError(ValueError):
    """A context value is missing or invalid; the message names the key."""


class ContextSource(Protocol):
    def try_get_context(self, key: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class ExtraField:
    """A seller-defined field of the built-in sign-up form (context ``signupExtraFields``)."""

    name: str
    label: str
    required: bool
    max_length: int

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


# -- parsers: (raw context value, its key, what was parsed before) -> value -----------------

Parsed = dict[str, Any]
Parser = Callable[[Any, str, Parsed], Any]


def _stripped(value: Any) -> str | None:
    text = "" if value is None else str(value).strip()
    return text or None


def _text(default: str | None = None) -> Parser:
    return lambda value, key, parsed: _stripped(value) or default


def _matching(pattern: re.Pattern[str], problem: str, default: str | None = None) -> Parser:
    def parse(value: Any, key: str, parsed: Parsed) -> str | None:
        text = _stripped(value) or default
        if text and not pattern.fullmatch(text):
            raise ConfigError(f"context '{key}' {problem}")
        return text

    return parse


def _integer(default: int, low: int, high: int, allowed: tuple[int, ...] = ()) -> Parser:
    def parse(value: Any, key: str, parsed: Parsed) -> int:
        text = _stripped(value)
        if text is None:
            return default
        try:
            number = int(text)
        except ValueError:
            raise ConfigError(f"context '{key}' must be a whole number") from None
        if not low <= number <= high:
            raise ConfigError(f"context '{key}' must be between {low} and {high}")
        if allowed and number not in allowed:
            raise ConfigError(f"context '{key}' must be one of {allowed}")
        return number

    return parse


def _boolean(default: bool) -> Parser:
    def parse(value: Any, key: str, parsed: Parsed) -> bool:
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in {"true", "1", "yes", "on"}:
            return True
        if text in {"false", "0", "no", "off"}:
            return False
        raise ConfigError(f"context '{key}' must be true or false")

    return parse


def _product_codes(value: Any, key: str, parsed: Parsed) -> tuple[str, ...]:
    items = value if isinstance(value, list) else str(value or "").split(",")
    codes = tuple(dict.fromkeys(str(c).strip() for c in items if str(c).strip()))
    if not codes:
        raise ConfigError(f"context '{key}' is required: your product code(s), comma-separated")
    for code in codes:
        if not _PRODUCT_CODE.fullmatch(code):
            raise ConfigError(f"context '{key}' holds {code!r}, which is not a product code")
    if parsed["deploy"] and any(code.startswith(EXAMPLE_PRODUCT_PREFIX) for code in codes):
        raise ConfigError(f"context '{key}' still holds the example value: set your own")
    return codes


def _legacy_product_codes(value: Any, key: str, parsed: Parsed) -> tuple[str, ...]:
    if value is None or value == [] or not str(value).strip():
        return ()
    codes = _product_codes(value, key, {**parsed, "deploy": False})
    if not parsed.get("lifecycle_enabled", True):
        raise ConfigError(
            f"context '{key}' needs lifecycle intake: "
            "set lifecycleEnabled=true or empty legacySnsProductCodes"
        )
    return _known_products(codes, key, parsed)


def _subscription_product_codes(value: Any, key: str, parsed: Parsed) -> tuple[str, ...]:
    if value is None or value == [] or not str(value).strip():
        return ()
    return _known_products(_product_codes(value, key, {**parsed, "deploy": False}), key, parsed)


def _metering_dimensions(value: Any, key: str, parsed: Parsed) -> tuple[str, ...]:
    """The products' metering dimensions (BatchMeterUsage's UsageDimension: 1 to 255
    characters); none: metering is off and the stack has no metering resources."""
    if value is None or value == [] or value == "":
        return ()
    items = value if isinstance(value, list) else str(value).split(",")
    names = tuple(str(item).strip() for item in items)
    for name in names:
        if not 1 <= len(name) <= 255 or "," in name:
            raise ConfigError(
                f"context '{key}' holds {name!r}: a dimension is 1 to 255 characters, no comma"
            )
    if len(set(names)) < len(names):
        raise ConfigError(f"context '{key}' names a dimension twice")
    return names


def _known_products(codes: tuple[str, ...], key: str, parsed: Parsed) -> tuple[str, ...]:
    unknown = [code for code in codes if code not in parsed.get("product_codes", ())]
    if unknown:
        raise ConfigError(
            f"context '{key}' holds {unknown[0]!r}, which is not one of 'productCodes'"
        )
    return codes


def _https_url(value: Any, key: str, parsed: Parsed) -> str | None:
    url = _stripped(value)
    if url is None:
        return None
    parts = urlsplit(url)
    if parsed["deploy"] and (parts.hostname or "").endswith(EXAMPLE_HOST_SUFFIXES):
        hint = " (empty: buyers use the built-in sign-up page)" if key == "registrationUrl" else ""
        raise ConfigError(
            f"context '{key}' still points at an example host: set your own or empty it{hint}"
        )
    if parts.scheme != "https" or not parts.hostname or parts.fragment:
        raise ConfigError(f"context '{key}' must be an https:// URL without a fragment")
    return url


def _certificate_arn(value: Any, key: str, parsed: Parsed) -> str | None:
    arn = _stripped(value)
    if bool(parsed["domain_name"]) != bool(arn):
        raise ConfigError("context 'domainName' and 'certificateArn' go together: set both")
    if arn and not _CERTIFICATE_ARN.fullmatch(arn):
        raise ConfigError(f"context '{key}' is not an ACM certificate ARN")
    return arn


def _extra_fields(value: Any, key: str, parsed: Parsed) -> tuple[ExtraField, ...]:
    """A JSON list (in cdk.json, or as a string with -c) of field objects; empty: none."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return ()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ConfigError(f"context '{key}' is not valid JSON") from None
    if not isinstance(value, list) or len(value) > contract.MAX_EXTRA_FIELDS:
        raise ConfigError(
            f"context '{key}' must be a JSON list of at most {contract.MAX_EXTRA_FIELDS} fields"
        )
    fields: list[ExtraField] = []
    for item in value:
        fields.append(_extra_field(key, item, taken={f.name for f in fields}))
    return tuple(fields)


def _extra_field(key: str, item: Any, *, taken: set[str]) -> ExtraField:
    if not isinstance(item, dict):
        raise ConfigError(f"context '{key}' lists something that is not an object")
    name, label = item.get("name"), item.get("label")
    required = item.get("required", False)
    max_length = item.get("max_length", contract.DEFAULT_FIELD_LENGTH)
    if not isinstance(name, str) or not _FIELD_NAME.fullmatch(name):
        raise ConfigError(
            f"context '{key}': every field needs a lower_snake_case name (at most 40 characters)"
        )
    if name in contract.RESERVED_FIELD_NAMES or name in taken:
        raise ConfigError(f"context '{key}': the name {name!r} is repeated or reserved")
    if not isinstance(label, str) or not 0 < len(label.strip()) <= contract.MAX_LABEL_LENGTH:
        raise ConfigError(
            f"context '{key}': field {name!r} needs a label of 1 to "
            f"{contract.MAX_LABEL_LENGTH} characters"
        )
    if not isinstance(required, bool):
        raise ConfigError(f"context '{key}': field {name!r}: 'required' must be true or false")
    if (
        not isinstance(max_length, int)
        or isinstance(max_length, bool)
        or not 1 <= max_length <= contract.MAX_FIELD_LENGTH
    ):
        raise ConfigError(
            f"context '{key}': field {name!r}: 'max_length' must be 1 to "
            f"{contract.MAX_FIELD_LENGTH}"
        )
    return ExtraField(name, label.strip(), required, max_length)


def _read(parse: Parser) -> BeforeValidator:
    """Parse a field's raw context value, naming its key in errors; ``parsed`` holds the
    fields declared above it (those that were valid) and whether this is a deployment."""

    def validate(value: Any, info: ValidationInfo) -> Any:
        parsed = {**info.data, "deploy": bool(info.context and info.context.get("deploy"))}
        return parse(value, to_camel(info.field_name or ""), parsed)

    return BeforeValidator(validate)


_email = _matching(_EMAIL, "is not an email address")
_region = _matching(_REGION, "is not an AWS region name", contract.DEFAULT_MARKETPLACE_REGION)
_session_ttl = _integer(
    contract.DEFAULT_SESSION_TTL_SECONDS,
    contract.MIN_SESSION_TTL_SECONDS,
    contract.MAX_SESSION_TTL_SECONDS,
)


class FulfillmentConfig(BaseModel):
    model_config = ConfigDict(frozen=True, alias_generator=to_camel)

    stack_name: Annotated[str, _read(_text("Fulfillment"))]
    product_codes: Annotated[tuple[str, ...], _read(_product_codes)]
    # None: buyers go to the built-in sign-up page (GET /signup) of this API.
    registration_url: Annotated[str | None, _read(_https_url)]
    trial_registration_url: Annotated[str | None, _read(_https_url)]
    signup_complete_url: Annotated[str | None, _read(_https_url)]
    signup_extra_fields: Annotated[tuple[ExtraField, ...], _read(_extra_fields)]
    marketplace_region: Annotated[str, _read(_region)]
    session_ttl_seconds: Annotated[int, _read(_session_ttl)]
    alarm_email: Annotated[str | None, _read(_email)]
    notification_email: Annotated[str | None, _read(_email)]
    waf_enabled: Annotated[bool, _read(_boolean(True))]
    waf_rate_limit: Annotated[int, _read(_integer(300, 10, 2_000_000_000))]
    throttling_rate_limit: Annotated[int, _read(_integer(50, 1, 10_000))]
    throttling_burst_limit: Annotated[int, _read(_integer(100, 1, 5_000))]
    log_retention_days: Annotated[int, _read(_integer(90, 1, 3653, LOG_RETENTION_DAYS))]
    domain_name: Annotated[str | None, _read(_text())]
    certificate_arn: Annotated[str | None, _read(_certificate_arn)]
    metrics_namespace: Annotated[str, _read(_text(contract.DEFAULT_METRICS_NAMESPACE))]
    service_name: Annotated[str, _read(_text(contract.DEFAULT_SERVICE_NAME))]
    # Subscription lifecycle intake (infra/lifecycle.py); deploys to us-east-1 only.
    lifecycle_enabled: Annotated[bool, _read(_boolean(True))]
    # Product codes whose legacy SNS topics are subscribed too (a subset of product_codes).
    legacy_sns_product_codes: Annotated[tuple[str, ...], _read(_legacy_product_codes)]
    # Product codes priced by subscription only (no contract dimensions; a subset of
    # product_codes): their lifecycle notifications never call GetEntitlements.
    subscription_product_codes: Annotated[tuple[str, ...], _read(_subscription_product_codes)]
    # Metering (infra/metering.py, docs/metering.md): off (no resources) while empty.
    metering_dimensions: Annotated[tuple[str, ...], _read(_metering_dimensions)]
    # The hourly run does everything but BatchMeterUsage, and logs what it would send.
    metering_dry_run: Annotated[bool, _read(_boolean(False))]

    @classmethod
    def from_context(cls, source: ContextSource) -> FulfillmentConfig:
        # `make deploy` passes -c deploy=true: then cdk.json's example values are refused.
        deploy = _boolean(False)(source.try_get_context("deploy"), "deploy", {})
        context = {
            to_camel(name): source.try_get_context(to_camel(name)) for name in cls.model_fields
        }
        try:
            return cls.model_validate(context, context={"deploy": deploy})
        except ValidationError as error:
            first = error.errors()[0]
            raise first.get("ctx", {}).get("error") or ConfigError(first["msg"]) from None
