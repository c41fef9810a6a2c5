"""Local stand-in for the AWS Marketplace Metering API and the Marketplace buyer page.

Never deployed. moto implements neither ResolveCustomer nor GetEntitlements, so local runs and
tests talk to this instead: `POST /` speaks JSON 1.1 exactly as the real endpoints do (boto3
works against it: AWS_ENDPOINT_URL_MARKETPLACE_METERING and
AWS_ENDPOINT_URL_MARKETPLACE_ENTITLEMENT_SERVICE may both name this server),
`/_admin/*` lets other processes issue tokens and inject faults, and `GET /marketplace` renders
a page whose buttons post a fresh registration token to the fulfillment URL, as Marketplace does
after a buyer subscribes. With a `notification_sink` the page also has lifecycle buttons per
customer (subscribe, unsubscribe, license updated, deprovisioned, duplicate, out of order) that
emit real-shaped EventBridge events or legacy SNS envelopes (what SQS would hold as the body), and
with a `status_reader` it shows each customer's status from the customers table.

Run standalone from the repository root:
    python -m local.marketplace --port 8001 --product-code prod-xxx \
        --fulfillment-url http://127.0.0.1:8000/
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import json
import math
import random
import secrets
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs

RESOLVE_TARGET = "AWSMPMeteringService.ResolveCustomer"
ENTITLEMENTS_TARGET = "AWSMPEntitlementService.GetEntitlements"
DEFAULT_ENTITLEMENTS: tuple[tuple[str, int], ...] = (("users", 10),)
MAX_ENTITLEMENT_PAGE = 25
AMZ_JSON = "application/x-amz-json-1.1"
DEFAULT_EXPIRE_AFTER_SECONDS = 14400.0  # the seller guide's "about 4 hours"
MAX_BODY_BYTES = 1 << 20
PAGE_TITLE = "AWS Marketplace (local stand-in)"
PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action *"
LIFECYCLE_PATH = "/marketplace/lifecycle"
# The buttons of the page; "duplicate" sends the customer's last notifications again (as a
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

# Status codes as the real service answers them (marketplace-facts.md).
ERROR_STATUS: dict[str, int] = {
    "InvalidTokenException": 400,
    "ExpiredTokenException": 400,
    "ThrottlingException": 400,
    "InternalServiceErrorException": 500,
    "DisabledApiException": 400,
}
ERROR_MESSAGES: dict[str, str] = {
    "InvalidTokenException": "Registration token is invalid.",
    "ExpiredTokenException": (
        "The submitted registration token has expired. This can happen if the buyer's browser "
        "takes too long to redirect to your page, the buyer has resubmitted the registration "
        "token, or your application has held on to the registration token too long."
    ),
    "ThrottlingException": "Rate exceeded.",
    "InternalServiceErrorException": "An internal error has occurred. Retry your request.",
    "DisabledApiException": "The API is not available in this region.",
}


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


def default_customers(
    product_code: str, other_product_code: str = "prod-otherproduct0"
) -> list[TestCustomer]:
    """The standard cast: new-style, second license, legacy, free trial, other product."""
    return [
        TestCustomer(
            name="new-style",
            label="New-style buyer (account ID + license ARN)",
            product_code=product_code,
            customer_aws_account_id="111122223333",
            license_arn=(
                "arn:aws:license-manager::111122223333:license:l-0123456789abcdef0123456789abcdef"
            ),
            customer_identifier="",
            agreement_id="agmt-1a2b3c4d5e6f7g8h9i0j1k2l3",
        ),
        TestCustomer(
            name="second-license",
            label="Same account, second license (concurrent agreement)",
            product_code=product_code,
            customer_aws_account_id="111122223333",
            license_arn=(
                "arn:aws:license-manager::111122223333:license:l-fedcba9876543210fedcba9876543210"
            ),
            customer_identifier="",
            agreement_id="agmt-9z8y7x6w5v4u3t2s1r0q9p8o7",
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
        TestCustomer(
            name="free-trial",
            label="Free-trial buyer",
            product_code=product_code,
            customer_aws_account_id="777788889999",
            license_arn=(
                "arn:aws:license-manager::777788889999:license:l-0a1b2c3d4e5f60718293a4b5c6d7e8f9"
            ),
            customer_identifier="",
            agreement_id="agmt-f1r2e3e4t5r6i7a8l9o0f1f2e",
            free_trial=True,
            # A valid answer the reference sample crashed on: no entitlements at all.
            entitlements=(),
        ),
        TestCustomer(
            name="other-product",
            label="Buyer of another product (should be refused)",
            product_code=other_product_code,
            customer_aws_account_id="111122223333",
            license_arn=(
                "arn:aws:license-manager::111122223333:license:l-99998888777766665555444433332222"
            ),
            customer_identifier="",
            agreement_id="agmt-o1t2h3e4r5p6r7o8d9u0c1t2x",
        ),
    ]


def generated_customer(product_code: str, number: int) -> TestCustomer:
    """Buyer ``number`` of a crowd (load runs): new-style, with its own account and license."""
    if not 0 <= number < 10**11:
        raise ValueError("number must be between 0 and 10**11 - 1")
    account = f"9{number:011d}"
    return TestCustomer(
        name=f"generated-{number}",
        label=f"Generated buyer {number}",
        product_code=product_code,
        customer_aws_account_id=account,
        license_arn=f"arn:aws:license-manager::{account}:license:l-{number:032x}",
        customer_identifier="",
        agreement_id=f"agmt-gen{number:022d}",
    )


@dataclass
class _Faults:
    throttle_next: int = 0
    internal_error_next: int = 0
    disabled: bool = False
    expire_after_seconds: float = DEFAULT_EXPIRE_AFTER_SECONDS
    throttle_rate: float = 0.0
    seed: int | None = None
    latency_seconds: float = 0.0


@dataclass(frozen=True)
class _IssuedToken:
    customer: TestCustomer
    issued_at: float  # time.monotonic()


def _token_key(token: str) -> str:
    # Counts are kept by digest so the stand-in's state never holds a usable token.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _error(code: str) -> tuple[int, dict[str, Any]]:
    return ERROR_STATUS[code], {"__type": code, "message": ERROR_MESSAGES[code]}


class MarketplaceStandIn:
    """Thread-safe fake of ResolveCustomer: customers, issued tokens, faults and call counts."""

    def __init__(
        self,
        customers: Iterable[TestCustomer],
        *,
        expire_after_seconds: float = DEFAULT_EXPIRE_AFTER_SECONDS,
        notification_sink: NotificationSink | None = None,
        status_reader: StatusReader | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self.notification_sink = notification_sink
        self.status_reader = status_reader
        # customer name -> (time of its last notification, the bodies last sent)
        self._last_sent: dict[str, tuple[datetime, list[str]]] = {}
        self._customers: dict[str, TestCustomer] = {}
        for customer in customers:
            if customer.name in self._customers:
                raise ValueError(f"duplicate test customer name: {customer.name}")
            self._customers[customer.name] = customer
        self._default_expire_after = float(expire_after_seconds)
        self._tokens: dict[str, _IssuedToken] = {}
        self._faults = _Faults(expire_after_seconds=self._default_expire_after)
        self._random = random.Random()  # noqa: S311 - fault injection, not cryptography
        self._resolve_calls = 0
        self._calls_by_key: dict[str, int] = {}
        self._answers: dict[str, int] = {}

    # -- customers and tokens ------------------------------------------------------------------

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

    def issue_token(self, customer_name: str) -> str:
        """A fresh registration token for the named customer; KeyError if unknown."""
        with self._lock:
            customer = self._customers[customer_name]
            while True:
                # 49 random bytes -> 68 base64 chars ending in "==". Draw again until both "+"
                # and "/" occur, so every token exercises form-encoding of all three.
                token = base64.b64encode(secrets.token_bytes(49)).decode("ascii")
                if "+" in token and "/" in token and token not in self._tokens:
                    break
            self._tokens[token] = _IssuedToken(customer=customer, issued_at=time.monotonic())
            return token

    # -- the API ---------------------------------------------------------------------------------

    def resolve(self, token: str) -> tuple[int, dict[str, Any]]:
        """The ResolveCustomer answer for `token`: (HTTP status, JSON body)."""
        with self._lock:
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
            return _error("DisabledApiException")
        if faults.throttle_next > 0:
            faults.throttle_next -= 1
            return _error("ThrottlingException")
        if faults.internal_error_next > 0:
            faults.internal_error_next -= 1
            return _error("InternalServiceErrorException")
        if faults.throttle_rate > 0 and self._random.random() < faults.throttle_rate:
            return _error("ThrottlingException")

        issued = self._tokens.get(token) if token.strip() else None
        if issued is None:
            return _error("InvalidTokenException")
        if time.monotonic() - issued.issued_at >= faults.expire_after_seconds:
            return _error("ExpiredTokenException")
        return 200, _resolve_body(issued.customer)

    # -- lifecycle notifications ----------------------------------------------------------------

    def connect_lifecycle(
        self, notification_sink: NotificationSink, status_reader: StatusReader | None = None
    ) -> None:
        """Where emitted notifications go (the local queue) and how statuses are read."""
        self.notification_sink = notification_sink
        self.status_reader = status_reader

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
            if action == "duplicate":
                if last is None:
                    raise ValueError("nothing sent for this customer yet")
                bodies = list(last[1])
            else:
                now = datetime.now(UTC).replace(microsecond=0)
                if action == "out-of-order":
                    # Older than anything sent, so it must not win over what was.
                    when = (last[0] if last else now) - timedelta(hours=1)
                    bodies = build_notifications(customer, "subscribe", when)
                else:
                    # Strictly later than the last one: one click per second is not required.
                    when = max(now, last[0] + timedelta(seconds=1)) if last else now
                    bodies = build_notifications(customer, action, when)
                    self._last_sent[customer_name] = (when, bodies)
                if action == "out-of-order" and last is not None:
                    self._last_sent[customer_name] = (last[0], bodies)
        for body in bodies:
            sink(body)
        return bodies

    def status_of(self, customer: TestCustomer) -> str | None:
        reader = self.status_reader
        return reader(customer) if reader is not None else None

    def get_entitlements(self, request: object) -> tuple[int, dict[str, Any]]:
        """The GetEntitlements answer for a decoded JSON request: (HTTP status, JSON body)."""
        if not isinstance(request, dict) or not isinstance(request.get("ProductCode"), str):
            message = "ProductCode is required."
            return 400, {"__type": "InvalidParameterException", "message": message}
        filters = request.get("Filter") or {}
        max_results = request.get("MaxResults", MAX_ENTITLEMENT_PAGE)
        token = request.get("NextToken")
        if (
            not isinstance(filters, dict)
            or isinstance(max_results, bool)
            or not isinstance(max_results, int)
            or not 1 <= max_results <= MAX_ENTITLEMENT_PAGE
            or (token is not None and not (isinstance(token, str) and token.isdigit()))
        ):
            return 400, {"__type": "InvalidParameterException", "message": "Invalid request."}
        with self._lock:
            if self._faults.throttle_next > 0:
                self._faults.throttle_next -= 1
                return 400, {"__type": "ThrottlingException", "message": "Rate exceeded."}
            customers = list(self._customers.values())
        entitlements = [
            entitlement
            for customer in customers
            if customer.product_code == request["ProductCode"]
            for entitlement in _entitlements(customer)
            if _matches(entitlement, filters)
        ]
        start = int(token or 0)
        page = entitlements[start : start + max_results]
        body: dict[str, Any] = {"Entitlements": page}
        if start + max_results < len(entitlements):
            body["NextToken"] = str(start + max_results)
        return 200, body

    # -- fault controls --------------------------------------------------------------------------

    def throttle_next(self, n: int) -> None:
        with self._lock:
            self._faults.throttle_next = _non_negative_int("throttle_next", n)

    def internal_error_next(self, n: int) -> None:
        with self._lock:
            self._faults.internal_error_next = _non_negative_int("internal_error_next", n)

    def set_disabled(self, disabled: bool) -> None:
        with self._lock:
            self._faults.disabled = bool(disabled)

    def set_expire_after(self, seconds: float) -> None:
        with self._lock:
            self._faults.expire_after_seconds = _non_negative_float("expire_after_seconds", seconds)

    def set_throttle_rate(self, rate: float, seed: int | None = None) -> None:
        rate = _non_negative_float("throttle_rate", rate)
        if rate > 1:
            raise ValueError("throttle_rate must be between 0 and 1")
        with self._lock:
            self._faults.throttle_rate = rate
            self._faults.seed = seed
            self._random = random.Random(seed)  # noqa: S311 - fault injection only

    def set_latency(self, seconds: float) -> None:
        with self._lock:
            self._faults.latency_seconds = _non_negative_float("latency_seconds", seconds)

    def reset(self) -> None:
        """Faults and counts back to defaults; issued tokens forgotten; customers kept."""
        with self._lock:
            self._faults = _Faults(expire_after_seconds=self._default_expire_after)
            self._random = random.Random()  # noqa: S311 - fault injection only
            self._tokens.clear()
            self._resolve_calls = 0
            self._calls_by_key.clear()
            self._answers.clear()
            self._last_sent.clear()

    # -- counts ----------------------------------------------------------------------------------

    @property
    def resolve_calls(self) -> int:
        with self._lock:
            return self._resolve_calls

    def resolve_calls_for(self, token: str) -> int:
        with self._lock:
            return self._calls_by_key.get(_token_key(token), 0)

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


def _resolve_body(customer: TestCustomer) -> dict[str, Any]:
    body: dict[str, Any] = {
        # Present even when empty: the real API answers "" for new integrations.
        "CustomerIdentifier": customer.customer_identifier,
        "CustomerAWSAccountId": customer.customer_aws_account_id,
        "ProductCode": customer.product_code,
    }
    if customer.license_arn is not None:
        body["LicenseArn"] = customer.license_arn
    if customer.agreement_id is not None:
        body["Metadata"] = {"AgreementId": customer.agreement_id}
    return body


_FILTER_FIELDS = {
    "CUSTOMER_AWS_ACCOUNT_ID": "CustomerAWSAccountId",
    "LICENSE_ARN": "LicenseArn",
    "CUSTOMER_IDENTIFIER": "CustomerIdentifier",
    "DIMENSION": "Dimension",
}


def _entitlements(customer: TestCustomer) -> list[dict[str, Any]]:
    expires = "2027-11-26T00:00:00Z"
    found = []
    for dimension, value in customer.entitlements:
        entitlement: dict[str, Any] = {
            "ProductCode": customer.product_code,
            "Dimension": dimension,
            "CustomerAWSAccountId": customer.customer_aws_account_id,
            "Value": {"IntegerValue": value},
            "ExpirationDate": expires,
        }
        if customer.customer_identifier:
            entitlement["CustomerIdentifier"] = customer.customer_identifier
        if customer.license_arn:
            entitlement["LicenseArn"] = customer.license_arn
        found.append(entitlement)
    return found


def _matches(entitlement: dict[str, Any], filters: dict[str, Any]) -> bool:
    # The API's rule: values of one filter are OR-ed, the filters AND-ed.
    for name, values in filters.items():
        field_name = _FILTER_FIELDS.get(name)
        if field_name is None or not isinstance(values, list):
            return False
        if entitlement.get(field_name) not in values:
            return False
    return True


def _non_negative_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer")
    return value


def _non_negative_float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be a finite, non-negative number")
    return number


def apply_faults(stand_in: MarketplaceStandIn, settings: dict[str, Any]) -> None:
    """Apply the admin API's fault settings; validates everything before changing anything."""
    allowed = {
        "throttle_next",
        "internal_error_next",
        "disabled",
        "expire_after_seconds",
        "throttle_rate",
        "seed",
        "latency_seconds",
    }
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise ValueError(f"unknown fault settings: {', '.join(unknown)}")
    if "throttle_next" in settings:
        _non_negative_int("throttle_next", settings["throttle_next"])
    if "internal_error_next" in settings:
        _non_negative_int("internal_error_next", settings["internal_error_next"])
    if "disabled" in settings and not isinstance(settings["disabled"], bool):
        raise ValueError("disabled must be true or false")
    if "expire_after_seconds" in settings:
        _non_negative_float("expire_after_seconds", settings["expire_after_seconds"])
    if "latency_seconds" in settings:
        _non_negative_float("latency_seconds", settings["latency_seconds"])
    seed = settings.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError("seed must be an integer or null")
    rate = settings.get("throttle_rate", stand_in.state()["faults"]["throttle_rate"])
    if _non_negative_float("throttle_rate", rate) > 1:
        raise ValueError("throttle_rate must be between 0 and 1")

    if "throttle_next" in settings:
        stand_in.throttle_next(settings["throttle_next"])
    if "internal_error_next" in settings:
        stand_in.internal_error_next(settings["internal_error_next"])
    if "disabled" in settings:
        stand_in.set_disabled(settings["disabled"])
    if "expire_after_seconds" in settings:
        stand_in.set_expire_after(settings["expire_after_seconds"])
    if "latency_seconds" in settings:
        stand_in.set_latency(settings["latency_seconds"])
    if "throttle_rate" in settings or "seed" in settings:
        stand_in.set_throttle_rate(rate, seed)


# -- lifecycle notifications as Marketplace sends them ---------------------------------------------
#
# Shapes from the AWS Marketplace seller guide ("Amazon EventBridge events": agreement and
# license events; "Amazon SNS notifications for SaaS products"). The agreement events carry no
# product code and no license ARN; the license events carry both.


def _event_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def eventbridge_event(customer: TestCustomer, detail_type: str, when: datetime) -> dict[str, Any]:
    """One ``aws.agreement-marketplace`` event as EventBridge delivers it to an SQS target."""
    agreement_id = customer.agreement_id or "agmt-unknown"
    detail: dict[str, Any] = {
        "requestId": str(uuid.uuid4()),
        "catalog": "AWSMarketplace",
        "agreement": {"id": agreement_id},
    }
    if detail_type.startswith("Purchase Agreement Created"):
        detail["agreement"].update(
            intent="NEW",
            status="ACTIVE",
            acceptanceTime=_event_time(when),
            startTime=_event_time(when),
            endTime=_event_time(when + timedelta(days=365)),
        )
    elif detail_type.startswith("Purchase Agreement Amended"):
        detail["agreement"].update(intent="AMEND", status="ACTIVE")
    elif detail_type.startswith("Purchase Agreement Ended"):
        detail["agreement"]["status"] = "CANCELLED"
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
        "source": "aws.agreement-marketplace",
        "account": SELLER_ACCOUNT,
        "time": _event_time(when),
        "region": "us-east-1",
        "resources": [f"arn:aws:aws-marketplace::aws:agreement:{agreement_id}"],
        "detail": detail,
    }


def sns_envelope(customer: TestCustomer, action: str, when: datetime) -> dict[str, Any]:
    """A legacy topic's notification as SQS holds it with raw message delivery off."""
    topic = "entitlement" if action == "entitlement-updated" else "subscription"
    message: dict[str, Any] = {
        "action": action,
        "customer-identifier": customer.customer_identifier,
        "product-code": customer.product_code,
    }
    if topic == "subscription":
        if action in ("subscribe-success", "subscribe-fail"):
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


_EVENTS_OF_ACTION = {
    # Both roles for agreement events: on a direct offer the seller is both.
    "subscribe": (
        "Purchase Agreement Created - Proposer",
        "Purchase Agreement Created - Manufacturer",
        "License Updated - Manufacturer",
    ),
    "unsubscribe": (
        "Purchase Agreement Ended - Proposer",
        "Purchase Agreement Ended - Manufacturer",
    ),
    "license-updated": ("License Updated - Manufacturer",),
    "deprovisioned": ("License Deprovisioned - Manufacturer",),
}
_SNS_OF_ACTION = {
    "subscribe": ("subscribe-success",),
    "subscribe-fail": ("subscribe-fail",),
    "unsubscribe": ("unsubscribe-pending", "unsubscribe-success"),
    "license-updated": ("entitlement-updated",),
    "deprovisioned": ("unsubscribe-success",),
}


def uses_legacy_notifications(customer: TestCustomer) -> bool:
    """Legacy products (a CustomerIdentifier, no license) get SNS; new ones EventBridge."""
    return customer.license_arn is None


def build_notifications(customer: TestCustomer, action: str, when: datetime) -> list[str]:
    """The SQS bodies Marketplace would cause for ``action`` at ``when``; ValueError if none."""
    if uses_legacy_notifications(customer):
        kinds = _SNS_OF_ACTION.get(action)
        if kinds is None:
            raise ValueError(f"unknown action: {action}")
        return [json.dumps(sns_envelope(customer, kind, when)) for kind in kinds]
    types = _EVENTS_OF_ACTION.get(action)
    if types is None:
        raise ValueError(f"unknown action for a new-style customer: {action}")
    return [json.dumps(eventbridge_event(customer, kind, when)) for kind in types]


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
    status = stand_in.status_of(customer)
    actions = LIFECYCLE_ACTIONS + (
        LEGACY_ONLY_ACTIONS if uses_legacy_notifications(customer) else ()
    )
    buttons = "".join(
        f'<button type="submit" name="action" value="{_e(action)}" class="lifecycle">'
        f"{_e(action.replace('-', ' ').capitalize())}</button> "
        for action in actions
    )
    channel = "SNS (legacy)" if uses_legacy_notifications(customer) else "EventBridge"
    return (
        f'<p>Status: <strong class="status" data-customer="{_e(customer.name)}">'
        f"{_e(status or 'not in the customers table')}</strong></p>"
        f'<form method="post" action="{_e(LIFECYCLE_PATH)}" class="lifecycle" '
        f'data-customer="{_e(customer.name)}">'
        f'<input type="hidden" name="customer" value="{_e(customer.name)}">'
        f"<p>Lifecycle notifications ({_e(channel)}):</p>{buttons}</form>"
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
            f'<section class="customer">'
            f"<h2>{_e(customer.label)}</h2>"
            f"{_definition_list(rows)}"
            f'<form method="post" action="{_e(fulfillment_url)}" '
            f'data-customer="{_e(customer.name)}">'
            f'<input type="hidden" name="x-amzn-marketplace-token" value="{_e(token)}">'
            f"{offer_input}"
            f'<button type="submit">Set up your account</button>'
            f"</form>{_lifecycle_controls(stand_in, customer)}</section>"
        )
    state = stand_in.state()
    faults = state["faults"]
    status = _definition_list(
        [
            ("ResolveCustomer calls", str(state["resolve_calls"])),
            ("Tokens issued", str(state["tokens_issued"])),
            *((name.replace("_", " ").capitalize(), json.dumps(v)) for name, v in faults.items()),
        ]
    )
    return (
        "<!doctype html>"
        '<html lang="en"><head><meta charset="utf-8">'
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


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # http.server's default backlog of 5 resets bursts of clients

    def __init__(
        self, address: tuple[str, int], stand_in: MarketplaceStandIn, fulfillment_url: str
    ) -> None:
        self.stand_in = stand_in
        self.fulfillment_url = fulfillment_url
        super().__init__(address, _Handler)


class _BadRequestError(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else ~40 ms per call on a reused connection
    timeout = 60  # idle keep-alive connections do not hold a thread forever
    server_version = "MarketplaceStandIn"
    sys_version = ""
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        # Silent: request lines and bodies would otherwise put tokens on stderr.
        return

    # -- plumbing --------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise _BadRequestError("chunked bodies are not supported")
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            return b""
        try:
            length = int(length_header)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            # The rest of the stream cannot be framed: answer, then drop the connection.
            self.close_connection = True
            raise _BadRequestError("bad or too large Content-Length")
        return self.rfile.read(length)

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        extra_headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra_headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, payload: object) -> None:
        body = json.dumps(payload).encode("utf-8")
        self._send(status, body, "application/json", [("Cache-Control", "no-store")])

    def _send_amz(self, status: int, payload: object) -> None:
        body = json.dumps(payload).encode("utf-8")
        self._send(status, body, AMZ_JSON, [("x-amzn-RequestId", str(uuid.uuid4()))])

    # -- routes ----------------------------------------------------------------------------------

    def do_GET(self) -> None:
        try:
            self._read_body()
        except _BadRequestError as exc:
            self._send_json(400, {"error": str(exc)})
            return
        path = self.path.split("?", 1)[0]
        if path == "/_admin/state":
            self._send_json(200, self.server.stand_in.state())
        elif path in ("/", "/marketplace") and not self.headers.get("X-Amz-Target"):
            page = render_marketplace_page(self.server.stand_in, self.server.fulfillment_url)
            self._send(
                200,
                page.encode("utf-8"),
                "text/html; charset=utf-8",
                [
                    ("Content-Security-Policy", PAGE_CSP),
                    ("X-Content-Type-Options", "nosniff"),
                    ("Cache-Control", "no-store"),
                    ("Referrer-Policy", "no-referrer"),
                ],
            )
        else:
            self._send_json(404, {"error": "not found"})

    def do_POST(self) -> None:
        try:
            body = self._read_body()
        except _BadRequestError as exc:
            self._send_json(400, {"error": str(exc)})
            return
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._metering(body)
        elif path == LIFECYCLE_PATH:
            self._lifecycle_form(body)
        elif path.startswith("/_admin/"):
            self._admin(path, body)
        else:
            self._send_json(404, {"error": "not found"})

    def _metering(self, body: bytes) -> None:
        target = self.headers.get("X-Amz-Target", "")
        if target == ENTITLEMENTS_TARGET:
            try:
                request = json.loads(body or b"{}")
            except (ValueError, UnicodeDecodeError):
                request = None
            self._send_amz(*self.server.stand_in.get_entitlements(request))
            return
        if target != RESOLVE_TARGET:
            self._send_amz(
                400,
                {"__type": "UnknownOperationException", "message": "Unknown operation."},
            )
            return
        try:
            request = json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError):
            self._send_amz(
                400, {"__type": "SerializationException", "message": "Body is not valid JSON."}
            )
            return
        token = request.get("RegistrationToken") if isinstance(request, dict) else None
        # Missing, blank or non-string tokens count as calls and answer InvalidTokenException.
        status, payload = self.server.stand_in.resolve(token if isinstance(token, str) else "")
        self._send_amz(status, payload)

    def _lifecycle_form(self, body: bytes) -> None:
        """The page's lifecycle buttons: emit, then POST-redirect-GET back to the page."""
        try:
            form = parse_qs(body.decode("utf-8"), strict_parsing=False)
            name, action = form["customer"][0], form["action"][0]
            self.server.stand_in.emit(name, action)
        except (KeyError, IndexError, UnicodeDecodeError):
            self._send_json(400, {"error": "customer and action are required"})
            return
        except ValueError as exc:
            self._send_json(400, {"error": str(exc)})
            return
        self._send(303, b"", "text/plain", [("Location", "/marketplace")])

    def _admin(self, path: str, body: bytes) -> None:
        try:
            request = json.loads(body) if body.strip() else {}
        except (ValueError, UnicodeDecodeError):
            self._send_json(400, {"error": "body is not valid JSON"})
            return
        if not isinstance(request, dict):
            self._send_json(400, {"error": "body must be a JSON object"})
            return
        stand_in = self.server.stand_in
        if path == "/_admin/tokens":
            name = request.get("customer")
            if not isinstance(name, str):
                self._send_json(400, {"error": "customer (string) is required"})
                return
            try:
                token = stand_in.issue_token(name)
            except KeyError:
                self._send_json(404, {"error": f"unknown customer: {name}"})
                return
            self._send_json(200, {"token": token})
        elif path == "/_admin/faults":
            try:
                apply_faults(stand_in, request)
            except ValueError as exc:
                self._send_json(400, {"error": str(exc)})
                return
            self._send_json(200, stand_in.state())
        elif path == "/_admin/notifications":
            name, action = request.get("customer"), request.get("action")
            if not isinstance(name, str) or not isinstance(action, str):
                self._send_json(400, {"error": "customer and action (strings) are required"})
                return
            try:
                bodies = stand_in.emit(name, action)
            except KeyError:
                self._send_json(404, {"error": f"unknown customer: {name}"})
                return
            except ValueError as exc:
                self._send_json(400, {"error": str(exc)})
                return
            self._send_json(200, {"sent": [json.loads(b) for b in bodies]})
        elif path == "/_admin/reset":
            stand_in.reset()
            self._send_json(200, stand_in.state())
        else:
            self._send_json(404, {"error": "not found"})


@dataclass
class RunningServer:
    """A stand-in server running on a daemon thread."""

    url: str
    port: int
    _server: _Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_server(
    stand_in: MarketplaceStandIn,
    host: str = "127.0.0.1",
    port: int = 0,
    fulfillment_url: str = "http://127.0.0.1:8000/",
) -> RunningServer:
    """Serve `stand_in` over HTTP on a daemon thread; port 0 picks a free port."""
    server = _Server((host, port), stand_in, fulfillment_url)
    bound_port = int(server.server_address[1])
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.1},
        name=f"marketplace-standin-{bound_port}",
        daemon=True,
    )
    thread.start()
    return RunningServer(
        url=f"http://{host}:{bound_port}", port=bound_port, _server=server, _thread=thread
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m local.marketplace",
        description="Local stand-in for the AWS Marketplace Metering API and buyer page.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--product-code", default="prod-localtest00")
    parser.add_argument("--other-product-code", default="prod-otherproduct0")
    parser.add_argument("--fulfillment-url", default="http://127.0.0.1:8000/")
    parser.add_argument(
        "--expire-after", type=float, default=DEFAULT_EXPIRE_AFTER_SECONDS, metavar="SECONDS"
    )
    args = parser.parse_args(argv)

    stand_in = MarketplaceStandIn(
        default_customers(args.product_code, args.other_product_code),
        expire_after_seconds=args.expire_after,
    )
    running = start_server(stand_in, args.host, args.port, args.fulfillment_url)
    # SIGTERM behaves like Ctrl-C so the socket is closed cleanly either way.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    print(
        f"Marketplace stand-in on {running.url} (buyer page {running.url}/marketplace, "
        f"fulfillment URL {args.fulfillment_url})",
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        running.stop()


if __name__ == "__main__":
    main()
