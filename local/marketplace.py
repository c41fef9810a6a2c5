"""Local stand-in for AWS Marketplace: the Metering, Entitlement and Agreement APIs (the calls
this project makes) and the buyer page.

Never deployed; the one stand-in behind `make run`, the tests and `make bench` (moto has none
of ResolveCustomer, GetEntitlements, GetAgreementTerms). `MarketplaceStandIn.call` answers a
JSON 1.1 or 1.0 request (``X-Amz-Target`` and body) as the real endpoints do, errors as
``{"__type", "message"}`` with their status codes: over HTTP at ``POST /`` (AWS_ENDPOINT_URL_
MARKETPLACE_METERING, ..._ENTITLEMENT_SERVICE and ..._AGREEMENT may all name the server), or
in-process (bench/fakes.py).
``GET /marketplace`` is a page whose buttons post a fresh registration token to the
fulfillment URL, as Marketplace does after a buyer subscribes; connected to a lifecycle queue
it also sends each customer's lifecycle notifications (real-shaped EventBridge events, or
legacy SNS envelopes) and shows their status. ``/_admin/*`` lets other processes issue tokens,
set faults, send notifications and reset. Standalone, from the repository root:

    python -m local.marketplace --port 8001 --fulfillment-url http://127.0.0.1:8000/
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import html
import json
import random
import secrets
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import parse_qs

from fulfillment.contract import MARKETPLACE_EVENT_SOURCE, NotificationType
from fulfillment.contract import MarketplaceErrorCode as Code
from local.metering import BATCH_METER_USAGE_TARGET, MeteredCustomer, MeteringStandIn
from local.server import LocalRequest, LocalResponse, RunningServer, serve

RESOLVE_TARGET = "AWSMPMeteringService.ResolveCustomer"
ENTITLEMENTS_TARGET = "AWSMPEntitlementService.GetEntitlements"
AGREEMENT_TERMS_TARGET = "AWSMPCommerceService_v20200301.GetAgreementTerms"
MAX_TERMS_PAGE = 50
AMZ_JSON = "application/x-amz-json-1.1"
DEFAULT_ENTITLEMENTS: tuple[tuple[str, int], ...] = (("users", 10),)
MAX_ENTITLEMENT_PAGE = 25
DEFAULT_EXPIRE_AFTER_SECONDS = 14400.0  # the seller guide's "about 4 hours"
MAX_BODY_BYTES = 1 << 20
PAGE_TITLE = "AWS Marketplace (local stand-in)"
PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action *"
LIFECYCLE_PATH = "/marketplace/lifecycle"
# The page's buttons; "duplicate" sends the customer's last notifications again (as a
# redelivery does), "out-of-order" sends a subscribe dated before the last notification.
LIFECYCLE_ACTIONS = (
    "subscribe",
    "unsubscribe",
    "license-updated",
    "deprovisioned",
    "duplicate",
    "out-of-order",
)
LEGACY_ONLY_ACTIONS = ("subscribe-fail",)
# As in AWS: the AWS-owned account of the legacy topics, the seller account of the events.
MARKETPLACE_TOPIC_ACCOUNT = "287250355862"
SELLER_ACCOUNT = "123456789012"

NotificationSink = Callable[[str], None]
StatusReader = Callable[["TestCustomer"], "str | None"]

# Status codes and messages as the real service answers them (marketplace-facts.md).
ERRORS: dict[str, tuple[int, str]] = {
    Code.INVALID_TOKEN: (400, "Registration token is invalid."),
    Code.EXPIRED_TOKEN: (
        400,
        "The submitted registration token has expired. This can happen if the buyer's browser "
        "takes too long to redirect to your page, the buyer has resubmitted the registration "
        "token, or your application has held on to the registration token too long.",
    ),
    Code.THROTTLING: (400, "Rate exceeded."),
    Code.INTERNAL_SERVICE_ERROR: (500, "An internal error has occurred. Retry your request."),
    Code.DISABLED_API: (400, "The API is not available in this region."),
    "InvalidParameterException": (400, "Invalid request."),
    "SerializationException": (400, "Body is not valid JSON."),
    "UnknownOperationException": (400, "Unknown operation."),
    # The Agreement API's (JSON 1.0, its own status codes).
    "AccessDeniedException": (403, "User is not authorized to perform this action."),
    "ResourceNotFoundException": (404, "Agreement not found."),
    "ValidationException": (400, "Invalid request."),
    # BatchMeterUsage's refusals of a whole request (local/metering.py).
    "TimestampOutOfBoundsException": (400, "Timestamp is out of the allowed range."),
    "InvalidLicenseException": (400, "The license ARN is not valid."),
    "InvalidUsageDimensionException": (400, "The usage dimension does not match the product."),
    "InvalidTagException": (400, "A tag is not valid."),
    "InvalidUsageAllocationsException": (400, "The usage allocations are not valid."),
    "InvalidCustomerIdentifierException": (400, "The customer identifier is not valid."),
}


def _error(code: str, status: int | None = None) -> tuple[int, dict[str, Any]]:
    """The answer of error ``code``; ``status`` where an API gives it another status code."""
    usual, message = ERRORS[code]
    return status or usual, {"__type": code, "message": message}


@dataclass(frozen=True)
class TestCustomer:
    """A buyer the stand-in can issue registration tokens for."""

    __test__: ClassVar[bool] = False  # not a pytest test class despite the name

    name: str
    label: str
    product_code: str
    customer_aws_account_id: str
    license_arn: str | None
    customer_identifier: str
    agreement_id: str | None
    free_trial: bool = False
    # GetEntitlements answers: (dimension, integer value); () answers an empty list.
    entitlements: tuple[tuple[str, int], ...] = DEFAULT_ENTITLEMENTS


def _new_style(
    name: str, label: str, product: str, account: str, license_id: str, agreement: str
) -> TestCustomer:
    return TestCustomer(
        name=name,
        label=label,
        product_code=product,
        customer_aws_account_id=account,
        license_arn=f"arn:aws:license-manager::{account}:license:l-{license_id}",
        customer_identifier="",
        agreement_id=agreement,
    )


def default_customers(
    product_code: str, other_product_code: str = "prod-otherproduct0"
) -> list[TestCustomer]:
    """The standard cast: new-style, second license, legacy, free trial, other product."""
    account = "111122223333"
    return [
        _new_style(
            "new-style",
            "New-style buyer (account ID + license ARN)",
            product_code,
            account,
            "0123456789abcdef0123456789abcdef",
            "agmt-1a2b3c4d5e6f7g8h9i0j1k2l3",
        ),
        _new_style(
            "second-license",
            "Same account, second license (concurrent agreement)",
            product_code,
            account,
            "fedcba9876543210fedcba9876543210",
            "agmt-9z8y7x6w5v4u3t2s1r0q9p8o7",
        ),
        TestCustomer(
            name="legacy",
            label="Legacy buyer (CustomerIdentifier only)",
            product_code=product_code,
            customer_aws_account_id="444455556666",
            license_arn=None,
            customer_identifier="Ab1Cd2Ef3Gh",
            agreement_id=None,
        ),
        dataclasses.replace(
            _new_style(
                "free-trial",
                "Free-trial buyer",
                product_code,
                "777788889999",
                "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
                "agmt-f1r2e3e4t5r6i7a8l9o0f1f2e",
            ),
            free_trial=True,
            # A valid answer the reference sample crashed on: no entitlements at all.
            entitlements=(),
        ),
        _new_style(
            "other-product",
            "Buyer of another product (should be refused)",
            other_product_code,
            account,
            "99998888777766665555444433332222",
            "agmt-o1t2h3e4r5p6r7o8d9u0c1t2x",
        ),
    ]


def generated_customer(product_code: str, number: int) -> TestCustomer:
    """Buyer ``number`` of a crowd (load runs): new-style, with its own account and license."""
    if not 0 <= number < 10**11:
        raise ValueError("number must be between 0 and 10**11 - 1")
    return _new_style(
        f"generated-{number}",
        f"Generated buyer {number}",
        product_code,
        f"9{number:011d}",
        f"{number:032x}",
        f"agmt-gen{number:022d}",
    )


@dataclass
class Faults:
    throttle_next: int = 0
    internal_error_next: int = 0
    disabled: bool = False
    expire_after_seconds: float = DEFAULT_EXPIRE_AFTER_SECONDS
    throttle_rate: float = 0.0
    seed: int | None = None
    latency_seconds: float = 0.0
    # GetEntitlements: answer the next n calls with InvalidParameterException (permanent).
    invalid_parameter_next: int = 0
    # GetEntitlements: answer every entitlement of the product, whatever the filter says
    # (an answer carrying other licenses' and customers' entitlements).
    ignore_entitlement_filters: bool = False
    # GetAgreementTerms: answer the next n calls with AccessDeniedException (permanent).
    terms_denied_next: int = 0


def _number(value: object, most: float = sys.float_info.max) -> bool:
    """A finite number from 0 to ``most`` (a bool is not one)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= most


def _fault_error(name: str, value: object) -> str | None:
    """Why ``value`` cannot be fault ``name``, or None when it can."""
    count = _number(value) and isinstance(value, int)
    rules: dict[str, tuple[bool, str]] = {
        "throttle_next": (count, "a non-negative integer"),
        "internal_error_next": (count, "a non-negative integer"),
        "invalid_parameter_next": (count, "a non-negative integer"),
        "terms_denied_next": (count, "a non-negative integer"),
        "ignore_entitlement_filters": (isinstance(value, bool), "true or false"),
        "disabled": (isinstance(value, bool), "true or false"),
        "expire_after_seconds": (_number(value), "a finite, non-negative number"),
        "latency_seconds": (_number(value), "a finite, non-negative number"),
        "throttle_rate": (_number(value, 1.0), "between 0 and 1"),
        "seed": (
            value is None or (isinstance(value, int) and not isinstance(value, bool)),
            "an integer or null",
        ),
    }
    if name not in rules:
        return f"unknown fault setting: {name}"
    ok, wanted = rules[name]
    return None if ok else f"{name} must be {wanted}"


@dataclass(frozen=True)
class _IssuedToken:
    customer: TestCustomer
    issued_at: float  # time.monotonic()


def _token_key(token: str) -> str:
    # Counts are kept by digest so the stand-in's state never holds a usable token.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class MarketplaceStandIn:
    """Thread-safe fake of ResolveCustomer and GetEntitlements: customers, issued tokens,
    faults, call counts, and the lifecycle notifications Marketplace would send."""

    # Set by reset().
    _faults: Faults
    _random: random.Random
    _tokens: dict[str, _IssuedToken]
    _resolve_calls: int
    _entitlement_calls: int
    _terms_calls: int
    _calls_by_key: dict[str, int]  # calls per token, by digest
    _answers: dict[str, int]
    # customer name -> (time of its last notification, the bodies last sent)
    _last_sent: dict[str, tuple[datetime, list[str]]]

    def __init__(
        self,
        customers: Iterable[TestCustomer],
        *,
        expire_after_seconds: float = DEFAULT_EXPIRE_AFTER_SECONDS,
    ) -> None:
        self._lock = threading.Lock()
        self._customers: dict[str, TestCustomer] = {}
        for customer in customers:
            self.add_customer(customer)
        self._default_faults = Faults(expire_after_seconds=float(expire_after_seconds))
        self.notification_sink: NotificationSink | None = None
        self.status_reader: StatusReader | None = None
        # Customers whose subscription ended (the lifecycle actions unsubscribe, deprovisioned):
        # BatchMeterUsage answers CustomerNotSubscribed for them.
        self._ended: set[str] = set()
        self.metering = MeteringStandIn(self._metered_customer, self._is_subscribed)
        self.reset()

    # -- customers and tokens --------------------------------------------------------------

    @property
    def customers(self) -> list[TestCustomer]:
        with self._lock:
            return list(self._customers.values())

    def add_customer(self, customer: TestCustomer) -> None:
        """Make one more buyer known (e.g. generated_customer); ValueError if the name is taken."""
        with self._lock:
            if customer.name in self._customers:
                raise ValueError(f"duplicate test customer name: {customer.name}")
            self._customers[customer.name] = customer

    def issue_token(self, customer_name: str, token: str | None = None) -> str:
        """A fresh registration token for the named customer (KeyError if unknown); ``token``
        fixes its value instead (a fixture's)."""
        with self._lock:
            customer = self._customers[customer_name]
            if token is None:
                token = ""
                while "+" not in token or "/" not in token or token in self._tokens:
                    # 49 random bytes -> 68 base64 chars ending in "==". Draw again until "+"
                    # and "/" occur, so every token exercises form-encoding of all three.
                    token = base64.b64encode(secrets.token_bytes(49)).decode("ascii")
            self._tokens[token] = _IssuedToken(customer, time.monotonic())
            return token

    # -- the API -----------------------------------------------------------------------------

    def call(self, target: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """The answer to one JSON 1.1 request: (HTTP status, JSON body)."""
        try:
            request = json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError):
            request = None
        if target == ENTITLEMENTS_TARGET:
            return self.get_entitlements(request)
        if target == AGREEMENT_TERMS_TARGET:
            return self.get_agreement_terms(request)
        if target == BATCH_METER_USAGE_TARGET:
            return self.batch_meter_usage(request)
        if target != RESOLVE_TARGET:
            return _error("UnknownOperationException")
        if request is None:
            return _error("SerializationException")
        token = request.get("RegistrationToken") if isinstance(request, dict) else None
        # Missing, blank or non-string tokens count as calls and answer InvalidTokenException.
        return self.resolve(token if isinstance(token, str) else "")

    def resolve(self, token: str) -> tuple[int, dict[str, Any]]:
        """The ResolveCustomer answer for `token`: (HTTP status, JSON body)."""
        latency = self._faults.latency_seconds
        if latency > 0:
            time.sleep(latency)
        with self._lock:
            self._resolve_calls += 1
            key = _token_key(token)
            self._calls_by_key[key] = self._calls_by_key.get(key, 0) + 1
            status, body = self._answer(token)
            outcome = str(body.get("__type", "ok"))
            self._answers[outcome] = self._answers.get(outcome, 0) + 1
            return status, body

    def _answer(self, token: str) -> tuple[int, dict[str, Any]]:
        # Called with the lock held.
        faults = self._faults
        if faults.disabled:
            return _error(Code.DISABLED_API)
        if self._take("throttle_next"):
            return _error(Code.THROTTLING)
        if self._take("internal_error_next"):
            return _error(Code.INTERNAL_SERVICE_ERROR)
        if faults.throttle_rate > 0 and self._random.random() < faults.throttle_rate:
            return _error(Code.THROTTLING)
        issued = self._tokens.get(token) if token.strip() else None
        if issued is None:
            return _error(Code.INVALID_TOKEN)
        if time.monotonic() - issued.issued_at >= faults.expire_after_seconds:
            return _error(Code.EXPIRED_TOKEN)
        customer = issued.customer
        answer: dict[str, Any] = {
            # Present even when empty: the real API answers "" for new integrations.
            "CustomerIdentifier": customer.customer_identifier,
            "CustomerAWSAccountId": customer.customer_aws_account_id,
            "ProductCode": customer.product_code,
        }
        if customer.license_arn is not None:
            answer["LicenseArn"] = customer.license_arn
        if customer.agreement_id is not None:
            answer["Metadata"] = {"AgreementId": customer.agreement_id}
        return 200, answer

    def get_entitlements(self, request: object) -> tuple[int, dict[str, Any]]:
        """The GetEntitlements answer for a decoded JSON request: (HTTP status, JSON body)."""
        valid = isinstance(request, dict) and isinstance(request.get("ProductCode"), str)
        request = request if isinstance(request, dict) else {}
        filters = request.get("Filter") or {}
        size = request.get("MaxResults", MAX_ENTITLEMENT_PAGE)
        token = request.get("NextToken") or "0"
        if not (
            valid
            and isinstance(filters, dict)
            and type(size) is int
            and 1 <= size <= MAX_ENTITLEMENT_PAGE
            and isinstance(token, str)
            and token.isdigit()
        ):
            return _error("InvalidParameterException")
        with self._lock:
            self._entitlement_calls += 1
            if self._take("throttle_next"):
                return _error(Code.THROTTLING)
            if self._take("invalid_parameter_next"):
                return _error("InvalidParameterException")
            customers = list(self._customers.values())
            ignore_filters = self._faults.ignore_entitlement_filters
        entitlements = [
            entitlement
            for customer in customers
            if customer.product_code == request["ProductCode"]
            for entitlement in _entitlements(customer)
            if ignore_filters or _matches(entitlement, filters)
        ]
        start = int(token)
        body: dict[str, Any] = {"Entitlements": entitlements[start : start + size]}
        if start + size < len(entitlements):
            body["NextToken"] = str(start + size)
        return 200, body

    def batch_meter_usage(self, request: object) -> tuple[int, dict[str, Any]]:
        """The BatchMeterUsage answer (local/metering.py holds its rules and ledger)."""
        with self._lock:
            if self._take("throttle_next"):
                return _error(Code.THROTTLING)
            if self._take("internal_error_next"):
                return _error(Code.INTERNAL_SERVICE_ERROR)
        error, answer = self.metering.batch_meter_usage(request)
        return _error(error) if error else (200, answer)

    def _metered_customer(
        self, license_arn: str | None, identifier: str | None, product_code: str | None
    ) -> MeteredCustomer | None:
        with self._lock:
            for customer in self._customers.values():
                by_license = license_arn is not None and customer.license_arn == license_arn
                by_identifier = (
                    license_arn is None
                    and identifier == customer.customer_identifier
                    and product_code == customer.product_code
                )
                if by_license or by_identifier:
                    return MeteredCustomer(
                        customer.product_code,
                        customer.customer_aws_account_id,
                        customer.license_arn,
                        customer.customer_identifier or None,
                    )
        return None

    def _is_subscribed(self, customer: MeteredCustomer) -> bool:
        with self._lock:
            ended = {self._customers[n] for n in self._ended if n in self._customers}
        return not any(
            (c.license_arn or None, c.customer_identifier or None, c.product_code)
            == (customer.license_arn, customer.customer_identifier, customer.product_code)
            for c in ended
        )

    def set_subscribed(self, customer_name: str, subscribed: bool) -> None:
        """Start or end a customer's subscription as BatchMeterUsage sees it (KeyError if
        unknown); the lifecycle buttons do it too."""
        with self._lock:
            if customer_name not in self._customers:
                raise KeyError(customer_name)
            (self._ended.discard if subscribed else self._ended.add)(customer_name)

    def get_agreement_terms(self, request: object) -> tuple[int, dict[str, Any]]:
        """The GetAgreementTerms answer for a decoded JSON request: the accepted terms of the
        customer on that agreement (with a free-trial term for a trial customer)."""
        request = request if isinstance(request, dict) else {}
        agreement = request.get("agreementId")
        size = request.get("maxResults", MAX_TERMS_PAGE)
        token = request.get("nextToken") or "0"
        if not (
            isinstance(agreement, str)
            and 1 <= len(agreement) <= 64
            and type(size) is int
            and 1 <= size <= MAX_TERMS_PAGE
            and isinstance(token, str)
            and token.isdigit()
        ):
            return _error("ValidationException")
        with self._lock:
            self._terms_calls += 1
            if self._take("throttle_next"):
                return _error(Code.THROTTLING, 429)  # the Agreement API's code
            if self._take("terms_denied_next"):
                return _error("AccessDeniedException")
            found = [c for c in self._customers.values() if c.agreement_id == agreement]
        if not found:
            return _error("ResourceNotFoundException")
        terms = _accepted_terms(found[0])
        start = int(token)
        body: dict[str, Any] = {"acceptedTerms": terms[start : start + size]}
        if start + size < len(terms):
            body["nextToken"] = str(start + size)
        return 200, body

    def _take(self, fault: str) -> bool:
        """Use up one of a counted fault (throttle_next, internal_error_next); lock held."""
        left = int(getattr(self._faults, fault))
        if left > 0:
            setattr(self._faults, fault, left - 1)
        return left > 0

    # -- faults and counts -------------------------------------------------------------------

    def set_faults(self, **settings: Any) -> None:
        """Change the named faults (Faults' fields); ValueError, and nothing changed, for an
        unknown name or a bad value. A throttle rate or seed restarts the seeded draws."""
        errors = [e for name, v in settings.items() if (e := _fault_error(name, v))]
        if errors:
            raise ValueError("; ".join(errors))
        with self._lock:
            self._faults = dataclasses.replace(self._faults, **settings)
            if "throttle_rate" in settings or "seed" in settings:
                self._random = random.Random(self._faults.seed)  # noqa: S311 - faults only

    def throttle_next(self, n: int) -> None:
        self.set_faults(throttle_next=n)

    def internal_error_next(self, n: int) -> None:
        self.set_faults(internal_error_next=n)

    def set_disabled(self, disabled: bool) -> None:
        self.set_faults(disabled=disabled)

    def set_expire_after(self, seconds: float) -> None:
        self.set_faults(expire_after_seconds=seconds)

    def set_throttle_rate(self, rate: float, seed: int | None = None) -> None:
        self.set_faults(throttle_rate=rate, seed=seed)

    def set_latency(self, seconds: float) -> None:
        self.set_faults(latency_seconds=seconds)

    def reset(self) -> None:
        """Faults and counts back to defaults; issued tokens, ended subscriptions and billed usage
        forgotten; customers kept."""
        with self._lock:
            self._faults = dataclasses.replace(self._default_faults)
            self._random = random.Random()  # noqa: S311 - fault injection only
            self._tokens = {}
            self._resolve_calls = 0
            self._entitlement_calls = 0
            self._terms_calls = 0
            self._ended = set()
            self._calls_by_key = {}
            self._answers = {}
            self._last_sent = {}
        self.metering.reset()

    @property
    def resolve_calls(self) -> int:
        with self._lock:
            return self._resolve_calls

    def resolve_calls_for(self, token: str) -> int:
        with self._lock:
            return self._calls_by_key.get(_token_key(token), 0)

    @property
    def entitlement_calls(self) -> int:
        """GetEntitlements calls answered since the last reset."""
        with self._lock:
            return self._entitlement_calls

    @property
    def terms_calls(self) -> int:
        """GetAgreementTerms calls answered since the last reset."""
        with self._lock:
            return self._terms_calls

    @property
    def resolve_answers(self) -> dict[str, int]:
        """How ResolveCustomer calls were answered so far: "ok" or the error code, counted."""
        with self._lock:
            return dict(self._answers)

    def state(self) -> dict[str, Any]:
        """JSON-safe summary: counts (per token by SHA-256 digest), faults, customers."""
        with self._lock:
            return {
                "resolve_calls": self._resolve_calls,
                "resolve_calls_by_token_sha256": dict(self._calls_by_key),
                "resolve_answers": dict(self._answers),
                "tokens_issued": len(self._tokens),
                "faults": asdict(self._faults),
                "customers": [asdict(c) for c in self._customers.values()],
            }

    # -- lifecycle notifications -------------------------------------------------------------

    def connect_lifecycle(
        self, notification_sink: NotificationSink, status_reader: StatusReader | None = None
    ) -> None:
        """Where emitted notifications go (the local queue) and how statuses are read."""
        self.notification_sink = notification_sink
        self.status_reader = status_reader

    def status_of(self, customer: TestCustomer) -> str | None:
        reader = self.status_reader
        return reader(customer) if reader is not None else None

    def emit(self, customer_name: str, action: str) -> list[str]:
        """Send the notifications of ``action`` for a customer to the sink; their bodies.

        KeyError for an unknown customer, ValueError for an unknown action or without a sink.
        """
        sink = self.notification_sink
        if sink is None:
            raise ValueError("no lifecycle queue is connected")
        with self._lock:
            customer = self._customers[customer_name]
            last = self._last_sent.get(customer_name)
            now = datetime.now(UTC).replace(microsecond=0)
            if action == "duplicate":
                if last is None:
                    raise ValueError("nothing sent for this customer yet")
                bodies = list(last[1])
            elif action == "out-of-order":
                # Older than anything sent, so it must not win over what was.
                bodies = build_notifications(
                    customer, "subscribe", (last[0] if last else now) - timedelta(hours=1)
                )
                if last is not None:
                    self._last_sent[customer_name] = (last[0], bodies)
            else:
                # Strictly later than the last one: one click per second is not required.
                when = max(now, last[0] + timedelta(seconds=1)) if last else now
                bodies = build_notifications(customer, action, when)
                self._last_sent[customer_name] = (when, bodies)
                if action in ("subscribe", "unsubscribe", "deprovisioned"):
                    (self._ended.discard if action == "subscribe" else self._ended.add)(
                        customer_name
                    )
        for body in bodies:
            sink(body)
        return bodies


def _entitlements(customer: TestCustomer) -> list[dict[str, Any]]:
    found = []
    for dimension, value in customer.entitlements:
        entitlement: dict[str, Any] = {
            "ProductCode": customer.product_code,
            "Dimension": dimension,
            "CustomerAWSAccountId": customer.customer_aws_account_id,
            "Value": {"IntegerValue": value},
            "ExpirationDate": "2027-11-26T00:00:00Z",
        }
        if customer.customer_identifier:
            entitlement["CustomerIdentifier"] = customer.customer_identifier
        if customer.license_arn:
            entitlement["LicenseArn"] = customer.license_arn
        found.append(entitlement)
    return found


def _accepted_terms(customer: TestCustomer) -> list[dict[str, Any]]:
    """An agreement's accepted terms as the Agreement API answers them: a legal term, the
    contract's pricing with the buyer's configuration, and a free trial for a trial buyer."""
    grants = [{"dimensionKey": d, "maxQuantity": v} for d, v in customer.entitlements]
    terms: list[dict[str, Any]] = [
        {
            "legalTerm": {
                "id": f"term-legal-{customer.name}",
                "type": "LegalTerm",
                "documents": [{"type": "StandardEula", "version": "2022-07-14"}],
            }
        },
        {
            "configurableUpfrontPricingTerm": {
                "id": f"term-pricing-{customer.name}",
                "type": "ConfigurableUpfrontPricingTerm",
                "currencyCode": "USD",
                "configuration": {
                    "selectorValue": "P12M",
                    "dimensions": [
                        {"dimensionKey": d, "dimensionValue": v} for d, v in customer.entitlements
                    ],
                },
            }
        },
    ]
    if customer.free_trial:
        terms.append(
            {
                "freeTrialPricingTerm": {
                    "id": f"term-trial-{customer.name}",
                    "type": "FreeTrialPricingTerm",
                    "duration": "P30D",
                    "grants": grants,
                }
            }
        )
    return terms


_FILTER_FIELDS = {
    "CUSTOMER_AWS_ACCOUNT_ID": "CustomerAWSAccountId",
    "LICENSE_ARN": "LicenseArn",
    "CUSTOMER_IDENTIFIER": "CustomerIdentifier",
    "DIMENSION": "Dimension",
}


def _matches(entitlement: dict[str, Any], filters: dict[str, Any]) -> bool:
    # The API's rule: values of one filter are OR-ed, the filters AND-ed.
    return all(
        name in _FILTER_FIELDS
        and isinstance(values, list)
        and entitlement.get(_FILTER_FIELDS[name]) in values
        for name, values in filters.items()
    )


# -- lifecycle notifications as Marketplace sends them -------------------------------------------
#
# Shapes from the AWS Marketplace seller guide ("Amazon EventBridge events": agreement and
# license events; "Amazon SNS notifications for SaaS products"). The agreement events carry no
# product code and no license ARN; the license events carry both.


def _event_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def eventbridge_event(customer: TestCustomer, detail_type: str, when: datetime) -> dict[str, Any]:
    """One ``aws.agreement-marketplace`` event as EventBridge delivers it to an SQS target."""
    agreement_id = customer.agreement_id or "agmt-unknown"
    agreement: dict[str, Any] = {"id": agreement_id}
    detail: dict[str, Any] = {
        "requestId": str(uuid.uuid4()),
        "catalog": "AWSMarketplace",
        "agreement": agreement,
    }
    if detail_type.startswith(NotificationType.AGREEMENT_CREATED):
        agreement.update(
            intent="NEW",
            status="ACTIVE",
            acceptanceTime=_event_time(when),
            startTime=_event_time(when),
            endTime=_event_time(when + timedelta(days=365)),
        )
    elif detail_type.startswith(NotificationType.AGREEMENT_AMENDED):
        agreement.update(intent="AMEND", status="ACTIVE")
    elif detail_type.startswith(NotificationType.AGREEMENT_ENDED):
        agreement["status"] = "CANCELLED"
    else:  # License Updated / Deprovisioned
        detail["product"] = {"code": customer.product_code, "id": f"prod-{customer.name}"}
        detail["license"] = {"arn": customer.license_arn}
    detail["acceptor"] = {"accountId": customer.customer_aws_account_id}
    detail["proposer"] = {"accountId": SELLER_ACCOUNT}
    detail["offer"] = {"id": f"offer-{customer.name}"}
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": MARKETPLACE_EVENT_SOURCE,
        "account": SELLER_ACCOUNT,
        "time": _event_time(when),
        "region": "us-east-1",
        "resources": [f"arn:aws:aws-marketplace::aws:agreement:{agreement_id}"],
        "detail": detail,
    }


def sns_envelope(customer: TestCustomer, action: str, when: datetime) -> dict[str, Any]:
    """A legacy topic's notification as SQS holds it with raw message delivery off."""
    topic = "entitlement" if action == NotificationType.ENTITLEMENT_UPDATED else "subscription"
    message: dict[str, Any] = {
        "action": action,
        "customer-identifier": customer.customer_identifier,
        "product-code": customer.product_code,
    }
    if topic == "subscription":
        if action in (NotificationType.SUBSCRIBE_SUCCESS, NotificationType.SUBSCRIBE_FAIL):
            message["offer-identifier"] = f"offer-{customer.name}"
        message["isFreeTrialTermPresent"] = "true" if customer.free_trial else "false"
    topic_arn = (
        f"arn:aws:sns:us-east-1:{MARKETPLACE_TOPIC_ACCOUNT}:"
        f"aws-mp-{topic}-notification-{customer.product_code}"
    )
    return {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": topic_arn,
        "Message": json.dumps(message),
        "Timestamp": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "SignatureVersion": "1",
        "Signature": base64.b64encode(b"local stand-in: not signed").decode(),
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-local.pem",
        "UnsubscribeURL": (
            "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn="
            f"{topic_arn}:{uuid.uuid5(uuid.NAMESPACE_URL, topic_arn)}"
        ),
    }


def _roles(kind: NotificationType, *roles: str) -> tuple[str, ...]:
    return tuple(f"{kind} - {role}" for role in roles)


_EVENTS_OF_ACTION = {
    # Both roles for agreement events: on a direct offer the seller is both.
    "subscribe": (
        *_roles(NotificationType.AGREEMENT_CREATED, "Proposer", "Manufacturer"),
        *_roles(NotificationType.LICENSE_UPDATED, "Manufacturer"),
    ),
    "unsubscribe": _roles(NotificationType.AGREEMENT_ENDED, "Proposer", "Manufacturer"),
    "license-updated": _roles(NotificationType.LICENSE_UPDATED, "Manufacturer"),
    "deprovisioned": _roles(NotificationType.LICENSE_DEPROVISIONED, "Manufacturer"),
}
_SNS_OF_ACTION = {
    "subscribe": (NotificationType.SUBSCRIBE_SUCCESS,),
    "subscribe-fail": (NotificationType.SUBSCRIBE_FAIL,),
    "unsubscribe": (NotificationType.UNSUBSCRIBE_PENDING, NotificationType.UNSUBSCRIBE_SUCCESS),
    "license-updated": (NotificationType.ENTITLEMENT_UPDATED,),
    "deprovisioned": (NotificationType.UNSUBSCRIBE_SUCCESS,),
}


def uses_legacy_notifications(customer: TestCustomer) -> bool:
    """Legacy products (a CustomerIdentifier, no license) get SNS; new ones EventBridge."""
    return customer.license_arn is None


def build_notifications(customer: TestCustomer, action: str, when: datetime) -> list[str]:
    """The SQS bodies Marketplace would cause for ``action`` at ``when``; ValueError if none."""
    if uses_legacy_notifications(customer):
        if action not in _SNS_OF_ACTION:
            raise ValueError(f"unknown action: {action}")
        return [json.dumps(sns_envelope(customer, kind, when)) for kind in _SNS_OF_ACTION[action]]
    if action not in _EVENTS_OF_ACTION:
        raise ValueError(f"unknown action for a new-style customer: {action}")
    return [json.dumps(eventbridge_event(customer, t, when)) for t in _EVENTS_OF_ACTION[action]]


# -- the page that plays AWS Marketplace ---------------------------------------------------------

_PAGE_STYLE = """
body{font-family:system-ui,sans-serif;margin:0;background:#f2f3f3;color:#16191f}
header{background:#232f3e;color:#fff;padding:1rem 2rem}
header h1{margin:0;font-size:1.4rem}header p{margin:.4rem 0 0;color:#d5dbdb}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(20rem,1fr));gap:1rem;
padding:1rem 2rem}
section{background:#fff;border:1px solid #d5dbdb;border-radius:6px;padding:1rem}
section h2{font-size:1.05rem;margin:0 0 .5rem}
dl{display:grid;grid-template-columns:auto 1fr;gap:.2rem .8rem;margin:0 0 1rem;font-size:.9rem}
dt{color:#545b64}dd{margin:0;overflow-wrap:anywhere}
button.lifecycle{background:#fff;border-color:#545b64;font-weight:400;margin:.1rem 0}
button{background:#ff9900;border:1px solid #c45500;border-radius:4px;padding:.5rem 1rem;
font-weight:600;cursor:pointer}
footer{padding:0 2rem 2rem;font-size:.9rem}footer h2{font-size:1rem}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _definition_list(rows: Iterable[tuple[str, str]]) -> str:
    items = "".join(f"<dt>{_e(term)}</dt><dd>{_e(value)}</dd>" for term, value in rows)
    return f"<dl>{items}</dl>"


def _lifecycle_controls(stand_in: MarketplaceStandIn, customer: TestCustomer) -> str:
    if stand_in.notification_sink is None:
        return ""
    legacy = uses_legacy_notifications(customer)
    buttons = "".join(
        f'<button type="submit" name="action" value="{_e(action)}" class="lifecycle">'
        f"{_e(action.replace('-', ' ').capitalize())}</button> "
        for action in LIFECYCLE_ACTIONS + (LEGACY_ONLY_ACTIONS if legacy else ())
    )
    status = stand_in.status_of(customer) or "not in the customers table"
    return (
        f'<p>Status: <strong class="status" data-customer="{_e(customer.name)}">'
        f"{_e(status)}</strong></p>"
        f'<form method="post" action="{_e(LIFECYCLE_PATH)}" class="lifecycle" '
        f'data-customer="{_e(customer.name)}">'
        f'<input type="hidden" name="customer" value="{_e(customer.name)}">'
        f"<p>Lifecycle notifications ({'SNS (legacy)' if legacy else 'EventBridge'}):</p>"
        f"{buttons}</form>"
    )


def render_marketplace_page(stand_in: MarketplaceStandIn, fulfillment_url: str) -> str:
    """The buyer page: one form per test customer, each with a token issued just now."""
    sections = []
    for customer in stand_in.customers:
        token = stand_in.issue_token(customer.name)
        rows = [
            ("Customer", customer.name),
            ("Product code", customer.product_code),
            ("AWS account", customer.customer_aws_account_id),
        ]
        if customer.license_arn is not None:
            rows.append(("License", customer.license_arn))
        if customer.customer_identifier:
            rows.append(("Customer identifier", customer.customer_identifier))
        if customer.free_trial:
            rows.append(("Offer", "Free trial"))
        offer_input = (
            '<input type="hidden" name="x-amzn-marketplace-offer-type" value="free-trial">'
            if customer.free_trial
            else ""
        )
        sections.append(
            f'<section class="customer"><h2>{_e(customer.label)}</h2>{_definition_list(rows)}'
            f'<form method="post" action="{_e(fulfillment_url)}" '
            f'data-customer="{_e(customer.name)}">'
            f'<input type="hidden" name="x-amzn-marketplace-token" value="{_e(token)}">'
            f'{offer_input}<button type="submit">Set up your account</button>'
            f"</form>{_lifecycle_controls(stand_in, customer)}</section>"
        )
    state = stand_in.state()
    status = _definition_list(
        [
            ("ResolveCustomer calls", str(state["resolve_calls"])),
            ("Tokens issued", str(state["tokens_issued"])),
            *(
                (k.replace("_", " ").capitalize(), json.dumps(v))
                for k, v in state["faults"].items()
            ),
        ]
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{_e(PAGE_TITLE)}</title><style>{_PAGE_STYLE}</style></head><body>"
        f"<header><h1>{_e(PAGE_TITLE)}</h1>"
        "<p>This page plays AWS Marketplace for local testing: each button posts a freshly "
        "issued registration token to the fulfillment URL, as Marketplace does after a buyer "
        "subscribes.</p>"
        f"<p>Fulfillment URL: <code>{_e(fulfillment_url)}</code></p></header>"
        f"<main>{''.join(sections)}</main>"
        f'<footer><h2>Stand-in state</h2><div id="state">{status}</div></footer>'
        "</body></html>"
    )


# -- HTTP ----------------------------------------------------------------------------------------


def _json(status: int, payload: object) -> LocalResponse:
    headers = {"Content-Type": "application/json", "Cache-Control": "no-store"}
    return LocalResponse(status, headers, json.dumps(payload).encode("utf-8"))


def _admin(stand_in: MarketplaceStandIn, path: str, body: bytes) -> LocalResponse:
    try:
        request = json.loads(body) if body.strip() else {}
    except (ValueError, UnicodeDecodeError):
        return _json(400, {"error": "body is not valid JSON"})
    if not isinstance(request, dict):
        return _json(400, {"error": "body must be a JSON object"})
    try:
        if path == "/_admin/tokens":
            return _json(200, {"token": stand_in.issue_token(str(request["customer"]))})
        if path == "/_admin/faults":
            stand_in.set_faults(**request)
            return _json(200, stand_in.state())
        if path == "/_admin/notifications":
            bodies = stand_in.emit(str(request["customer"]), str(request["action"]))
            return _json(200, {"sent": [json.loads(b) for b in bodies]})
        if path == "/_admin/reset":
            stand_in.reset()
            return _json(200, stand_in.state())
    except KeyError as missing:
        name = request.get("customer")
        if isinstance(name, str) and missing.args == (name,):
            return _json(404, {"error": f"unknown customer: {name}"})
        return _json(400, {"error": f"{missing} is required"})
    except (TypeError, ValueError) as exc:
        return _json(400, {"error": str(exc)})
    return _json(404, {"error": "not found"})


def http_app(
    stand_in: MarketplaceStandIn, fulfillment_url: str
) -> Callable[[LocalRequest], LocalResponse]:
    """The stand-in over HTTP: the APIs at POST /, the page, its buttons, the admin API."""

    def app(request: LocalRequest) -> LocalResponse:
        method, path = request.method, request.path
        if method == "POST" and path == "/":
            status, answer = stand_in.call(request.header("X-Amz-Target"), request.body)
            headers = {"Content-Type": AMZ_JSON, "x-amzn-RequestId": str(uuid.uuid4())}
            return LocalResponse(status, headers, json.dumps(answer).encode("utf-8"))
        if method == "GET" and path == "/_admin/state":
            return _json(200, stand_in.state())
        if method == "GET" and path in ("/", "/marketplace") and not request.header("X-Amz-Target"):
            page = render_marketplace_page(stand_in, fulfillment_url).encode("utf-8")
            headers = {
                "Content-Type": "text/html; charset=utf-8",
                "Content-Security-Policy": PAGE_CSP,
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-store",
                "Referrer-Policy": "no-referrer",
            }
            return LocalResponse(200, headers, page)
        if method == "POST" and path == LIFECYCLE_PATH:
            # The page's lifecycle buttons: emit, then POST-redirect-GET back to the page.
            form = parse_qs(request.body.decode("utf-8", "replace"))
            try:
                stand_in.emit(form["customer"][0], form["action"][0])
            except KeyError:
                return _json(400, {"error": "customer and action are required"})
            except ValueError as exc:
                return _json(400, {"error": str(exc)})
            return LocalResponse(303, {"Location": "/marketplace"})
        if method == "POST" and path.startswith("/_admin/"):
            return _admin(stand_in, path, request.body)
        return _json(404, {"error": "not found"})

    return app


def start_server(
    stand_in: MarketplaceStandIn,
    host: str = "127.0.0.1",
    port: int = 0,
    fulfillment_url: str = "http://127.0.0.1:8000/",
) -> RunningServer:
    """Serve `stand_in` over HTTP on a daemon thread; port 0 picks a free port."""
    return serve(
        http_app(stand_in, fulfillment_url),
        host=host,
        port=port,
        name="marketplace-standin",
        refuse=lambda status, reason: _json(400, {"error": reason}),
        max_body_bytes=MAX_BODY_BYTES,
    )


def main(argv: list[str] | None = None) -> None:
    import argparse
    import signal

    parser = argparse.ArgumentParser(prog="python -m local.marketplace", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--product-code", default="prod-localtest00")
    parser.add_argument("--other-product-code", default="prod-otherproduct0")
    parser.add_argument("--fulfillment-url", default="http://127.0.0.1:8000/")
    parser.add_argument("--expire-after", type=float, default=DEFAULT_EXPIRE_AFTER_SECONDS)
    args = parser.parse_args(argv)
    stand_in = MarketplaceStandIn(
        default_customers(args.product_code, args.other_product_code),
        expire_after_seconds=args.expire_after,
    )
    # SIGTERM behaves like Ctrl-C so the socket is closed cleanly either way.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    running = start_server(stand_in, args.host, args.port, args.fulfillment_url)
    try:
        print(f"Marketplace stand-in on {running.url} (page {running.url}/marketplace)", flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        running.stop()


if __name__ == "__main__":
    main()
