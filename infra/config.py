"""Deploy-time settings: cdk.json context (overridable with `cdk -c key=value`), parsed once.

Context given on the command line arrives as strings, so every value is parsed here and a
missing or invalid one stops synth with a message that names its context key.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

_PRODUCT_CODE = re.compile(r"[-a-zA-Z0-9/=:_.@]{1,255}")
_REGION = re.compile(r"[a-z]{2}(-gov)?-[a-z]+-\d{1,2}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# The sign-up form's extra fields: the same rules as SIGNUP_EXTRA_FIELDS in the function's
# settings (infra never imports the function package; tests/infrastructure/test_config.py
# checks that both accept and refuse the same lists).
_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
MAX_EXTRA_FIELDS = 10
MAX_FIELD_LENGTH = 2000
DEFAULT_FIELD_LENGTH = 200
MAX_LABEL_LENGTH = 100
RESERVED_FIELD_NAMES = frozenset(
    {"company", "contact_name", "email", "phone", "registration", "csrf_token"}
)
_CERTIFICATE_ARN = re.compile(r"arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}")
# CloudWatch Logs accepts only these retention periods.
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)


class ConfigError(ValueError):
    """A context value is missing or invalid; the message names the key."""


@dataclass(frozen=True, slots=True)
class ExtraField:
    """A seller-defined field of the built-in sign-up form (context ``signupExtraFields``)."""

    name: str
    label: str
    required: bool
    max_length: int

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "required": self.required,
            "max_length": self.max_length,
        }


class ContextSource(Protocol):
    def try_get_context(self, key: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class FulfillmentConfig:
    stack_name: str
    product_codes: tuple[str, ...]
    # None: buyers go to the built-in sign-up page (GET /signup) of this API.
    registration_url: str | None
    trial_registration_url: str | None
    signup_complete_url: str | None
    signup_extra_fields: tuple[ExtraField, ...]
    marketplace_region: str
    session_ttl_seconds: int
    alarm_email: str | None
    notification_email: str | None
    waf_enabled: bool
    waf_rate_limit: int
    throttling_rate_limit: int
    throttling_burst_limit: int
    log_retention_days: int
    domain_name: str | None
    certificate_arn: str | None
    metrics_namespace: str
    service_name: str
    # Subscription lifecycle intake (infra/lifecycle.py); deploys to us-east-1 only.
    lifecycle_enabled: bool = True
    # Product codes whose legacy SNS topics are subscribed too (a subset of product_codes).
    legacy_sns_product_codes: tuple[str, ...] = ()

    @classmethod
    def from_context(cls, source: ContextSource) -> FulfillmentConfig:
        get = _Reader(source)
        domain_name = get.optional("domainName")
        certificate_arn = get.optional("certificateArn")
        if bool(domain_name) != bool(certificate_arn):
            raise ConfigError("context 'domainName' and 'certificateArn' go together: set both")
        if certificate_arn and not _CERTIFICATE_ARN.fullmatch(certificate_arn):
            raise ConfigError("context 'certificateArn' is not an ACM certificate ARN")
        email = get.optional("alarmEmail")
        if email and not _EMAIL.fullmatch(email):
            raise ConfigError("context 'alarmEmail' is not an email address")
        notification_email = get.optional("notificationEmail")
        if notification_email and not _EMAIL.fullmatch(notification_email):
            raise ConfigError("context 'notificationEmail' is not an email address")
        if get.boolean("deploy", False):
            _refuse_examples(get)
        retention = get.integer("logRetentionDays", 90, 1, 3653)
        product_codes = get.product_codes("productCodes")
        lifecycle_enabled = get.boolean("lifecycleEnabled", True)
        legacy_codes = get.optional_product_codes("legacySnsProductCodes")
        if legacy_codes and not lifecycle_enabled:
            raise ConfigError(
                "context 'legacySnsProductCodes' needs lifecycle intake: "
                "set lifecycleEnabled=true or empty legacySnsProductCodes"
            )
        unknown = [code for code in legacy_codes if code not in product_codes]
        if unknown:
            raise ConfigError(
                f"context 'legacySnsProductCodes' holds {unknown[0]!r}, which is not one of "
                "'productCodes'"
            )
        if retention not in LOG_RETENTION_DAYS:
            raise ConfigError(f"context 'logRetentionDays' must be one of {LOG_RETENTION_DAYS}")
        return cls(
            stack_name=get.optional("stackName") or "Fulfillment",
            product_codes=product_codes,
            registration_url=get.https_url("registrationUrl", required=False),
            trial_registration_url=get.https_url("trialRegistrationUrl", required=False),
            signup_complete_url=get.https_url("signupCompleteUrl", required=False),
            signup_extra_fields=get.extra_fields("signupExtraFields"),
            marketplace_region=get.region("marketplaceRegion", "us-east-1"),
            session_ttl_seconds=get.integer("sessionTtlSeconds", 3600, 60, 7 * 24 * 3600),
            alarm_email=email,
            notification_email=notification_email,
            waf_enabled=get.boolean("wafEnabled", True),
            waf_rate_limit=get.integer("wafRateLimit", 300, 10, 2_000_000_000),
            throttling_rate_limit=get.integer("throttlingRateLimit", 50, 1, 10_000),
            throttling_burst_limit=get.integer("throttlingBurstLimit", 100, 1, 5_000),
            log_retention_days=retention,
            domain_name=domain_name,
            certificate_arn=certificate_arn,
            metrics_namespace=get.optional("metricsNamespace") or "Fulfillment",
            service_name=get.optional("serviceName") or "fulfillment",
            lifecycle_enabled=lifecycle_enabled,
            legacy_sns_product_codes=legacy_codes,
        )


# cdk.json ships with these so that `make synth` works on a clean clone; `make deploy` passes
# -c deploy=true, and a deployment with them would turn every buyer away.
EXAMPLE_PRODUCT_PREFIX = "prod-example"
EXAMPLE_HOST_SUFFIXES = ("example.com", "example.net", "example.org", ".example")


def _refuse_examples(get: _Reader) -> None:
    if any(c.startswith(EXAMPLE_PRODUCT_PREFIX) for c in get.product_codes("productCodes")):
        raise ConfigError("context 'productCodes' still holds the example value: set your own")
    for key in ("registrationUrl", "trialRegistrationUrl", "signupCompleteUrl"):
        url = get.optional(key)
        host = urlsplit(url).hostname or "" if url else ""
        if host.endswith(EXAMPLE_HOST_SUFFIXES):
            hint = (
                " (empty: buyers use the built-in sign-up page)" if key == "registrationUrl" else ""
            )
            raise ConfigError(
                f"context '{key}' still points at an example host: set your own or empty it{hint}"
            )


class _Reader:
    def __init__(self, source: ContextSource) -> None:
        self._source = source

    def optional(self, key: str) -> str | None:
        value = self._source.try_get_context(key)
        if value is None:
            return None
        text = str(value).strip()
        return text or None

    def required(self, key: str) -> str:
        value = self.optional(key)
        if value is None:
            raise ConfigError(f"context '{key}' is required: set it in cdk.json or -c {key}=...")
        return value

    def product_codes(self, key: str) -> tuple[str, ...]:
        raw = self._source.try_get_context(key)
        items = raw if isinstance(raw, list) else str(raw or "").split(",")
        codes = tuple(dict.fromkeys(str(c).strip() for c in items if str(c).strip()))
        if not codes:
            raise ConfigError(f"context '{key}' is required: your product code(s), comma-separated")
        for code in codes:
            if not _PRODUCT_CODE.fullmatch(code):
                raise ConfigError(f"context '{key}' holds {code!r}, which is not a product code")
        return codes

    def optional_product_codes(self, key: str) -> tuple[str, ...]:
        raw = self._source.try_get_context(key)
        if raw is None or raw == [] or not str(raw).strip():
            return ()
        return self.product_codes(key)

    def https_url(self, key: str, *, required: bool) -> str | None:
        value = self.required(key) if required else self.optional(key)
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.hostname or parts.fragment:
            raise ConfigError(f"context '{key}' must be an https:// URL without a fragment")
        return value

    def extra_fields(self, key: str) -> tuple[ExtraField, ...]:
        """A JSON list (in cdk.json, or as a string with -c) of field objects; empty: none."""
        raw = self._source.try_get_context(key)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return ()
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError:
                raise ConfigError(f"context '{key}' is not valid JSON") from None
        if not isinstance(raw, list) or len(raw) > MAX_EXTRA_FIELDS:
            raise ConfigError(
                f"context '{key}' must be a JSON list of at most {MAX_EXTRA_FIELDS} fields"
            )
        fields: list[ExtraField] = []
        for item in raw:
            fields.append(_extra_field(key, item, taken={f.name for f in fields}))
        return tuple(fields)

    def region(self, key: str, default: str) -> str:
        value = self.optional(key) or default
        if not _REGION.fullmatch(value):
            raise ConfigError(f"context '{key}' is not an AWS region name")
        return value

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        raw = self.optional(key)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"context '{key}' must be a whole number") from None
        if not low <= value <= high:
            raise ConfigError(f"context '{key}' must be between {low} and {high}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        raw = self._source.try_get_context(key)
        if raw is None or raw == "":
            return default
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in {"true", "1", "yes", "on"}:
            return True
        if text in {"false", "0", "no", "off"}:
            return False
        raise ConfigError(f"context '{key}' must be true or false")


def _extra_field(key: str, item: Any, *, taken: set[str]) -> ExtraField:
    if not isinstance(item, dict):
        raise ConfigError(f"context '{key}' lists something that is not an object")
    name, label = item.get("name"), item.get("label")
    required = item.get("required", False)
    max_length = item.get("max_length", DEFAULT_FIELD_LENGTH)
    if not isinstance(name, str) or not _FIELD_NAME.fullmatch(name):
        raise ConfigError(
            f"context '{key}': every field needs a lower_snake_case name (at most 40 characters)"
        )
    if name in RESERVED_FIELD_NAMES or name in taken:
        raise ConfigError(f"context '{key}': the name {name!r} is repeated or reserved")
    if not isinstance(label, str) or not 0 < len(label.strip()) <= MAX_LABEL_LENGTH:
        raise ConfigError(
            f"context '{key}': field {name!r} needs a label of 1 to {MAX_LABEL_LENGTH} characters"
        )
    if not isinstance(required, bool):
        raise ConfigError(f"context '{key}': field {name!r}: 'required' must be true or false")
    if (
        not isinstance(max_length, int)
        or isinstance(max_length, bool)
        or not 1 <= max_length <= MAX_FIELD_LENGTH
    ):
        raise ConfigError(
            f"context '{key}': field {name!r}: 'max_length' must be 1 to {MAX_FIELD_LENGTH}"
        )
    return ExtraField(name, label.strip(), required, max_length)
