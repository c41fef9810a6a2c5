"""`make run`: the whole registration and sign-up flow on one machine, with no AWS account.

Starts moto's DynamoDB (unless AWS_ENDPOINT_URL_DYNAMODB names one), the Marketplace stand-in
(unless AWS_ENDPOINT_URL_MARKETPLACE_METERING names one) and the API Gateway emulator running
the real functions in worker processes, the pollers that feed the publisher, the lifecycle and
the recovery processors, plus a few local-only pages under /_local/.

Without REGISTRATION_URL buyers go to the built-in sign-up page (the product's default);
REGISTRATION_URL=/_local/registration sends them to the stand-in seller page instead.

    python -m local.run            # from the repository root; HOST, PORT, ... from the env

Tests reuse it through start_local_stack().
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import boto3

from fulfillment import contract
from local import pages
from local.dynamodb import create_tables, start_dynamodb
from local.event_sources import QueueFunction
from local.events import LocalEvents, start_local_events
from local.functions import LAMBDA_ROOT
from local.gateway import STAGE, Route, not_found, start_gateway
from local.lifecycle import LocalLifecycle
from local.marketplace import MarketplaceStandIn, default_customers, start_server
from local.recovery import start_local_recovery

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from local.gateway import RunningGateway

__all__ = ["HANDLER", "LAMBDA_ROOT", "ROUTES", "LocalStack", "main", "start_local_stack"]

# The gateway's default handler (the fulfillment URL); the other routes name their own.
HANDLER = contract.FULFILLMENT_HANDLER
SIGNUP_PATH = "/signup"
SIGNUP_ROUTES = [
    Route("GET", SIGNUP_PATH, handler=contract.SIGNUP_HANDLER),
    Route("POST", SIGNUP_PATH, handler=contract.SIGNUP_HANDLER),
]
# As deployed (infra/api.py): the buyers' API, with the built-in sign-up page only when no
# REGISTRATION_URL is set, and the hand-off's own API (JSON errors).
ROUTES = [
    Route("GET", "/"),
    Route("POST", "/"),
    *SIGNUP_ROUTES,
    Route(
        "GET",
        "/registrations/{id}",
        handler=contract.HANDOFF_HANDLER,
        iam_auth=True,
        json_errors=True,
    ),
]
# With metering on (METERING_DIMENSIONS, on by default here): the hand-off API's POST /usage.
USAGE_ROUTE = Route(
    "POST", "/usage", handler=contract.USAGE_HANDLER, iam_auth=True, json_errors=True
)

DEFAULTS = {
    contract.PRODUCT_CODES: "prod-localexample1",
    contract.CUSTOMERS_TABLE_NAME: "fulfillment-customers",
    contract.IDEMPOTENCY_TABLE_NAME: "fulfillment-idempotency",
    contract.CONTACTS_TABLE_NAME: "fulfillment-contacts",
    contract.USAGE_TABLE_NAME: "fulfillment-usage",
    # Example dimensions, so `make run` meters; empty turns metering off.
    contract.METERING_DIMENSIONS: "requests,storage_gb",
}
DEFAULT_WORKERS = 4
LOCAL_REGION = "us-east-1"
LOCAL_CREDENTIAL = "local"  # dummy: every endpoint the stack talks to is on this machine
# Passed on to the functions only when set.
_OPTIONAL_SETTINGS = (
    contract.METERING_DRY_RUN,
    contract.MARKETPLACE_REGION,
    contract.SESSION_TTL_SECONDS,
    contract.SIGNUP_EXTRA_FIELDS,
)
# URLs, passed on only when set; a value starting with "/" is taken relative to the local
# gateway (e.g. REGISTRATION_URL=/_local/registration), so it works with any PORT.
_URL_SETTINGS = (
    contract.REGISTRATION_URL,
    contract.TRIAL_REGISTRATION_URL,
    contract.SIGNUP_COMPLETE_URL,
)
_GATEWAY_PORT_ATTEMPTS = 5


@dataclass
class LocalStack:
    """A running local stack: URLs, the stand-in (None when external) and how to stop it."""

    url: str
    marketplace_url: str
    marketplace_page_url: str | None
    marketplace: MarketplaceStandIn | None
    dynamodb_url: str
    customers_table: str
    idempotency_table: str
    contacts_table: str
    function_environment: dict[str, str]
    # The publisher and the lifecycle queue need moto's stream and SQS: None when DynamoDB is
    # external. The recovery queue is moto's or AWS_ENDPOINT_URL_SQS's.
    events: LocalEvents | None = None
    lifecycle: LocalLifecycle | None = None
    recovery: QueueFunction | None = None
    _gateway: RunningGateway | None = field(default=None, repr=False)
    _stop_callbacks: list[Callable[[], None]] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def fulfillment_url(self) -> str:
        """The URL Marketplace posts buyers to (the API's root resource)."""
        return self.url + "/"

    @property
    def registration_url(self) -> str | None:
        """None: buyers go to the built-in sign-up page (signup_url), the product's default."""
        return self.function_environment.get(contract.REGISTRATION_URL)

    @property
    def trial_registration_url(self) -> str | None:
        return self.function_environment.get(contract.TRIAL_REGISTRATION_URL)

    @property
    def index_url(self) -> str:
        return self.url + pages.INDEX_PATH

    @property
    def signup_url(self) -> str:
        """The built-in sign-up page (fulfillment.signup)."""
        return self.url + SIGNUP_PATH

    @property
    def standin_registration_url(self) -> str:
        """The stand-in seller page, for trying REGISTRATION_URL=/_local/registration."""
        return self.url + pages.REGISTRATION_PATH

    def warm_up(self) -> set[int]:
        """Start every function worker and import the handler in each; returns their pids."""
        assert self._gateway is not None
        return self._gateway.warm_up()

    def dynamodb_client(self) -> DynamoDBClient:
        """A boto3 DynamoDB client for this stack's endpoint, with dummy credentials."""
        return _dynamodb_client(self.dynamodb_url)

    def stop(self) -> None:
        """Stop the gateway (and its workers), the pollers, the stand-in and moto; idempotent."""
        with self._lock:
            callbacks, self._stop_callbacks = self._stop_callbacks, []
        _run_all(callbacks)


def _run_all(callbacks: list[Callable[[], None]]) -> None:
    for callback in reversed(callbacks):
        with contextlib.suppress(Exception):
            callback()


def _dynamodb_client(endpoint_url: str) -> DynamoDBClient:
    session = boto3.session.Session(
        aws_access_key_id=LOCAL_CREDENTIAL,
        aws_secret_access_key=LOCAL_CREDENTIAL,
        region_name=LOCAL_REGION,
    )
    return session.client("dynamodb", endpoint_url=endpoint_url)


def _url_host(host: str) -> str:
    """The host part of a URL that reaches a server bound to ``host`` from this machine."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _setting(environ: Mapping[str, str], name: str, default: str = "") -> str:
    return environ.get(name, "").strip() or DEFAULTS.get(name, default)


def start_local_stack(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    environ: Mapping[str, str],
    workers: int | None = None,
) -> LocalStack:
    """Start DynamoDB, the Marketplace stand-in and the gateway; port 0 picks a free port.

    ``environ`` supplies the settings (PRODUCT_CODES, table names, URLs, ...), the optional
    external endpoints and LOCAL_WORKERS / MARKETPLACE_PORT. Removes AWS_PROFILE and
    AWS_DEFAULT_PROFILE from this process's environment: the spawned workers inherit it, and
    botocore refuses a profile its (isolated) config file does not hold.
    """
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        os.environ.pop(name, None)
    count = workers or int(_setting(environ, "LOCAL_WORKERS", str(DEFAULT_WORKERS)))
    for attempt in range(_GATEWAY_PORT_ATTEMPTS):
        # The function's URLs must be known before its workers start, so the gateway port is
        # fixed first: a probed free one when port is 0.
        stop_callbacks: list[Callable[[], None]] = []
        try:
            return _start(host, port or _free_port(host), environ, count, stop_callbacks)
        except BaseException as exc:
            _run_all(stop_callbacks)
            # Another process took the probed port before the gateway bound it: start over.
            taken = isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE
            if port or not taken or attempt == _GATEWAY_PORT_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _start(
    host: str,
    gateway_port: int,
    environ: Mapping[str, str],
    workers: int,
    stop_callbacks: list[Callable[[], None]],
) -> LocalStack:
    base_url = f"http://{_url_host(host)}:{gateway_port}"
    tables = {
        name: _setting(environ, name)
        for name in (
            contract.CUSTOMERS_TABLE_NAME,
            contract.IDEMPOTENCY_TABLE_NAME,
            contract.CONTACTS_TABLE_NAME,
        )
    }
    customers_table = tables[contract.CUSTOMERS_TABLE_NAME]
    product_codes = _setting(environ, contract.PRODUCT_CODES)
    dimensions = environ.get(
        contract.METERING_DIMENSIONS, DEFAULTS[contract.METERING_DIMENSIONS]
    ).strip()
    metering = (
        {
            contract.USAGE_TABLE_NAME: _setting(environ, contract.USAGE_TABLE_NAME),
            contract.METERING_DIMENSIONS: dimensions,
        }
        if dimensions
        else {}
    )
    urls = {
        name: (base_url + value if value.startswith("/") else value)
        for name in _URL_SETTINGS
        if (value := environ.get(name, "").strip())
    }

    # DynamoDB: an external endpoint, or moto on an ephemeral loopback port.
    dynamodb_url = environ.get("AWS_ENDPOINT_URL_DYNAMODB", "").strip()
    own_moto = not dynamodb_url
    if own_moto:
        moto = start_dynamodb("127.0.0.1", 0)
        stop_callbacks.append(moto.stop)
        dynamodb_url = moto.url
    client = _dynamodb_client(dynamodb_url)
    create_tables(
        client,
        customers_table,
        tables[contract.IDEMPOTENCY_TABLE_NAME],
        tables[contract.CONTACTS_TABLE_NAME],
        usage_table=metering.get(contract.USAGE_TABLE_NAME),
    )

    # Marketplace: an external endpoint, or our stand-in posting buyers to the gateway.
    marketplace_url = environ.get("AWS_ENDPOINT_URL_MARKETPLACE_METERING", "").strip()
    stand_in: MarketplaceStandIn | None = None
    marketplace_page_url: str | None = None
    if not marketplace_url:
        first_product = next(c.strip() for c in product_codes.split(",") if c.strip())
        stand_in = MarketplaceStandIn(default_customers(first_product))
        server = start_server(
            stand_in,
            host=host,
            port=int(_setting(environ, "MARKETPLACE_PORT", "0")),
            fulfillment_url=base_url + "/",
        )
        stop_callbacks.append(server.stop)
        marketplace_url = f"http://{_url_host(host)}:{server.port}"
        marketplace_page_url = marketplace_url + "/marketplace"

    function_environment: dict[str, str] = {
        **tables,
        **metering,
        contract.PRODUCT_CODES: product_codes,
        **urls,
        **{name: environ[name].strip() for name in _OPTIONAL_SETTINGS if _setting(environ, name)},
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_url,
        "AWS_ENDPOINT_URL_MARKETPLACE_METERING": marketplace_url,
        "AWS_ACCESS_KEY_ID": LOCAL_CREDENTIAL,
        "AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIAL,
        "AWS_SESSION_TOKEN": LOCAL_CREDENTIAL,
        "AWS_DEFAULT_REGION": LOCAL_REGION,
        "AWS_REGION": LOCAL_REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        # A developer's ~/.aws config must not change endpoints, retries or region locally.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        contract.POWERTOOLS_SERVICE_NAME: contract.DEFAULT_SERVICE_NAME,
        contract.POWERTOOLS_METRICS_NAMESPACE: contract.DEFAULT_METRICS_NAMESPACE,
        "POWERTOOLS_LOG_LEVEL": _setting(environ, "POWERTOOLS_LOG_LEVEL", "INFO"),
    }
    # As deployed, the publisher and the lifecycle and recovery processors never learn of the
    # contacts table.
    without_contacts = {
        k: v for k, v in function_environment.items() if k != contract.CONTACTS_TABLE_NAME
    }

    # Recovery: the fulfillment function parks registrations whose writes failed on an SQS
    # queue (RECOVERY_QUEUE_URL, a required setting): moto's, or AWS_ENDPOINT_URL_SQS's when
    # DynamoDB is external (that endpoint must then speak SQS).
    sqs_url = environ.get("AWS_ENDPOINT_URL_SQS", "").strip() or dynamodb_url
    recovery = start_local_recovery(
        endpoint_url=sqs_url, function_environment=without_contacts, region=LOCAL_REGION
    )
    stop_callbacks.append(recovery.stop)
    function_environment[contract.RECOVERY_QUEUE_URL] = recovery.queue_url
    function_environment["AWS_ENDPOINT_URL_SQS"] = sqs_url

    # Registration events and lifecycle notifications: moto's stream and SQS, so own moto only.
    events: LocalEvents | None = None
    lifecycle: LocalLifecycle | None = None
    if own_moto:
        events = start_local_events(
            dynamodb_url=dynamodb_url,
            customers_table=customers_table,
            function_environment=without_contacts,
            region=LOCAL_REGION,
        )
        stop_callbacks.append(events.stop)
        entitlement_url = (
            environ.get("AWS_ENDPOINT_URL_MARKETPLACE_ENTITLEMENT_SERVICE", "").strip()
            or marketplace_url
        )
        agreement_url = (
            environ.get("AWS_ENDPOINT_URL_MARKETPLACE_AGREEMENT", "").strip() or marketplace_url
        )
        lifecycle = LocalLifecycle(
            endpoint_url=dynamodb_url,
            customers_table=customers_table,
            function_environment={
                **without_contacts,
                "AWS_ENDPOINT_URL_MARKETPLACE_ENTITLEMENT_SERVICE": entitlement_url,
                "AWS_ENDPOINT_URL_MARKETPLACE_AGREEMENT": agreement_url,
            },
            region=LOCAL_REGION,
        )
        stop_callbacks.append(lifecycle.stop)
        if stand_in is not None:
            stand_in.connect_lifecycle(lifecycle.send, lifecycle.status_of)

    stack = LocalStack(
        url=base_url,
        marketplace_url=marketplace_url,
        marketplace_page_url=marketplace_page_url,
        marketplace=stand_in,
        dynamodb_url=dynamodb_url,
        customers_table=customers_table,
        idempotency_table=tables[contract.IDEMPOTENCY_TABLE_NAME],
        contacts_table=tables[contract.CONTACTS_TABLE_NAME],
        function_environment=function_environment,
        events=events,
        lifecycle=lifecycle,
        recovery=recovery,
        _stop_callbacks=stop_callbacks,
    )
    local_pages = {
        "/_local": pages.redirect_page(stack.index_url),
        pages.INDEX_PATH: pages.index_page(stack),
        pages.REGISTRATION_PATH: pages.registration_page(client, customers_table),
        pages.MARKETPLACE_REDIRECT_PATH: pages.redirect_page(marketplace_page_url),
        **({pages.EVENTS_PATH: events.page} if events is not None else {}),
    }
    builtin_signup = stack.registration_url is None
    if not builtin_signup:
        # The seller's own site: no sign-up page, and its path answers 404 (a page).
        for path in (SIGNUP_PATH, f"/{STAGE}{SIGNUP_PATH}"):
            local_pages[path] = not_found
    stack._gateway = start_gateway(
        handler=HANDLER,
        routes=[r for r in ROUTES if builtin_signup or r not in SIGNUP_ROUTES]
        + ([USAGE_ROUTE] if metering else []),
        host=host,
        port=gateway_port,
        workers=workers,
        environment=function_environment,
        local_pages=local_pages,
    )
    stop_callbacks.append(stack._gateway.stop)
    return stack


def _banner(stack: LocalStack) -> str:
    rows = [
        ("Fulfillment URL", stack.fulfillment_url),
        (
            ("AWS Marketplace", f"{stack.marketplace_page_url}  <- start here")
            if stack.marketplace_page_url is not None
            else ("Marketplace API", f"{stack.marketplace_url} (external)")
        ),
        ("Buyers go to", stack.registration_url or stack.signup_url + " (built-in)"),
        ("Local index", stack.index_url),
        ("DynamoDB", stack.dynamodb_url),
    ]
    if stack.events is not None:
        rows.append(("Published events", stack.url + pages.EVENTS_PATH))
    if stack.lifecycle is not None:
        rows.append(("Lifecycle queue", stack.lifecycle.queue_url))
    if stack.recovery is not None:
        rows.append(("Recovery queue", stack.recovery.queue_url))
    return "\n".join(
        ["Fulfillment local stack (no AWS account; nothing here is deployed)"]
        + [f"  {name:<20}{value}" for name, value in rows]
    )


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(environ: Mapping[str, str] | None = None) -> None:
    env = os.environ if environ is None else environ
    host = _setting(env, "HOST", "127.0.0.1")
    port = int(_setting(env, "PORT", "8000"))
    # Workers are spawned while SIGINT is ignored and keep ignoring it (an ignored signal stays
    # ignored across exec): Ctrl-C reaches the whole process group, and the workers are stopped
    # by the gateway's shutdown instead of each printing a KeyboardInterrupt traceback.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    stack = start_local_stack(host=host, port=port, environ=env)
    try:
        stack.warm_up()
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        print(_banner(stack), flush=True)
        print("ready (Ctrl-C to stop)", flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("stopping", file=sys.stderr, flush=True)
        stack.stop()
        print("stopped", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
