"""Load run (issue 6): many buyers registering at once while Marketplace throttles.

A freshly started local stack (gateway and function worker processes, moto's DynamoDB behind
one lock, the Marketplace stand-in) takes 500 registration tokens, each for its own new-style
buyer, from 20 concurrent clients, while 20 % of ResolveCustomer calls answer
ThrottlingException. botocore's standard retries inside the function absorb most of them; a
registration that still ends on a "Try again" page (503, or 409) is resubmitted through that
page's form after a short pause, as the buyer would. Afterwards every customer must be stored
exactly once. Loopback only, and bounded: past the request or time cap the run stops and
reports instead of publishing figures.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode, urljoin, urlsplit

from bench import REPO_ROOT, Report, Section
from bench.report import machine, markdown_table, percentile
from fulfillment import contract
from local.lifecycle import customer_key
from local.marketplace import generated_customer
from local.run import LocalStack, start_local_stack

TOKEN_FIELD = "x-amzn-marketplace-token"
FORM_TYPE = "application/x-www-form-urlencoded"
# Answers that carry a "Try again" form re-posting the token.
RESUBMITTABLE = frozenset({409, 503})
PRODUCT_CODE = "prod-localexample1"
DOCUMENT = REPO_ROOT / "docs" / "reliability.md"
MARKER = "load-run"
LOG_FILE = REPO_ROOT / "build" / "bench" / "load.log"


@dataclass(frozen=True)
class LoadSettings:
    tokens: int = 500
    clients: int = 20
    throttle_rate: float = 0.2
    seed: int = 6
    # The buyer's "Try again": at most this many, each after this pause.
    max_resubmits: int = 5
    resubmit_pause_seconds: float = 0.5
    # Caps of the whole run: past either, it stops and reports.
    max_requests: int = 3000
    max_seconds: float = 180.0
    request_timeout_seconds: float = 30.0
    marketplace_latency_seconds: float = 0.0


@dataclass(frozen=True)
class Exchange:
    """One HTTP request: the answer's status (None: no answer) and how long it took."""

    status: int | None
    seconds: float
    location: str = ""
    error: str = ""


@dataclass
class Registration:
    """One buyer's token from the first submission to the final answer."""

    customer_pk: str
    exchanges: list[Exchange]
    seconds: float
    stopped: bool = False  # a cap ended it before it finished

    @property
    def final(self) -> Exchange | None:
        return self.exchanges[-1] if self.exchanges else None

    @property
    def registered(self) -> bool:
        return self.final is not None and self.final.status == 303

    @property
    def resubmits(self) -> int:
        return max(0, len(self.exchanges) - 1)


@dataclass
class Stored:
    """What the customers table holds for the run's buyers."""

    registration_counts: dict[str, int]  # customer pk -> registration_count
    sessions: Counter[str]  # customer pk -> sign-up sessions pointing at it


@dataclass
class LoadResult:
    settings: LoadSettings
    registrations: list[Registration]
    wall_seconds: float
    resolve_calls: int
    resolve_answers: dict[str, int]
    stored: Stored
    # CPU seconds during the load: this process (moto, gateway, stand-in, clients) and its
    # child processes (function workers, local publisher and lifecycle processor).
    cpu: tuple[float, float] | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def exchanges(self) -> list[Exchange]:
        return [e for r in self.registrations for e in r.exchanges]


class _CapReachedError(Exception):
    pass


class _Budget:
    """The run's caps, shared by all clients."""

    def __init__(self, max_requests: int, max_seconds: float) -> None:
        self._lock = threading.Lock()
        self._max_requests = max_requests
        self._max_seconds = max_seconds
        self._deadline = time.monotonic() + max_seconds
        self.requests = 0
        self.exceeded = ""

    def spend(self) -> float:
        """Count one request; returns the seconds left. _CapReachedError past either cap."""
        with self._lock:
            left = self._deadline - time.monotonic()
            if self.requests >= self._max_requests:
                self.exceeded = self.exceeded or f"request cap ({self._max_requests}) reached"
            elif left <= 0:
                self.exceeded = self.exceeded or f"time cap ({self._max_seconds:.0f} s) reached"
            if self.exceeded:
                raise _CapReachedError
            self.requests += 1
            return left

    def pause(self, seconds: float) -> None:
        if time.monotonic() + seconds >= self._deadline:
            with self._lock:
                self.exceeded = self.exceeded or f"time cap ({self._max_seconds:.0f} s) reached"
            raise _CapReachedError
        time.sleep(seconds)


class _RetryForm(HTMLParser):
    """The first POST form of a page: where it posts and the fields a browser would send."""

    def __init__(self) -> None:
        super().__init__()
        self.found = False
        self.action = ""
        self.fields: list[tuple[str, str]] = []
        self._inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form" and not self.found:
            if (attributes.get("method") or "get").lower() == "post":
                self.found = self._inside = True
                self.action = attributes.get("action") or ""
        elif tag == "input" and self._inside and attributes.get("name"):
            self.fields.append((str(attributes["name"]), attributes.get("value") or ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._inside = False


class _Buyers:
    """The clients' behaviour: submit the token, follow "Try again" forms, record each answer."""

    def __init__(self, fulfillment_url: str, budget: _Budget, settings: LoadSettings) -> None:
        self._url = fulfillment_url
        self._budget = budget
        self._settings = settings

    def register(self, token: str, customer_pk: str) -> Registration:
        url, fields = self._url, [(TOKEN_FIELD, token)]
        exchanges: list[Exchange] = []
        started = time.perf_counter()
        stopped = False
        try:
            for attempt in range(self._settings.max_resubmits + 1):
                if attempt:
                    self._budget.pause(self._settings.resubmit_pause_seconds)
                exchange, form = self._post(url, fields)
                exchanges.append(exchange)
                if exchange.status not in RESUBMITTABLE or form is None:
                    break
                url, fields = urljoin(url, form.action), form.fields
        except _CapReachedError:
            stopped = True
        return Registration(customer_pk, exchanges, time.perf_counter() - started, stopped)

    def _post(self, url: str, fields: list[tuple[str, str]]) -> tuple[Exchange, _RetryForm | None]:
        left = self._budget.spend()
        parts = urlsplit(url)
        if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the load run talks to loopback only")
        started = time.perf_counter()
        connection = http.client.HTTPConnection(
            parts.hostname, parts.port, timeout=min(self._settings.request_timeout_seconds, left)
        )
        try:
            connection.request(
                "POST", parts.path or "/", urlencode(fields), {"Content-Type": FORM_TYPE}
            )
            response = connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            return Exchange(None, time.perf_counter() - started, error=type(exc).__name__), None
        finally:
            connection.close()
        exchange = Exchange(
            response.status, time.perf_counter() - started, response.getheader("Location") or ""
        )
        if response.status not in RESUBMITTABLE:
            return exchange, None
        form = _RetryForm()
        form.feed(body.decode("utf-8", "replace"))
        return exchange, form if form.found else None


def measure(stack: LocalStack, settings: LoadSettings) -> LoadResult:
    """Run the load against ``stack`` (its stand-in is reset) and check what was stored."""
    stand_in = stack.marketplace
    if stand_in is None:
        raise ValueError("the load run needs the stack's own Marketplace stand-in")
    product_code = stack.function_environment[contract.PRODUCT_CODES].split(",")[0].strip()
    # Given a crowd of distinct new-style buyers, one fresh token each
    stand_in.reset()
    first = sum(1 for c in stand_in.customers if c.name.startswith("generated-"))
    crowd = [generated_customer(product_code, first + n) for n in range(settings.tokens)]
    for customer in crowd:
        stand_in.add_customer(customer)
    tokens = [stand_in.issue_token(customer.name) for customer in crowd]
    pks = [customer_key(customer)[contract.PK]["S"] for customer in crowd]
    stand_in.set_latency(settings.marketplace_latency_seconds)
    stand_in.set_throttle_rate(settings.throttle_rate, seed=settings.seed)

    # When the clients register them all, resubmitting where a page says "Try again"
    budget = _Budget(settings.max_requests, settings.max_seconds)
    buyers = _Buyers(stack.fulfillment_url, budget, settings)
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    with ThreadPoolExecutor(settings.clients, thread_name_prefix="load-client") as pool:
        registrations = list(pool.map(buyers.register, tokens, pks))
    wall_seconds = time.perf_counter() - started
    cpu_after = cpu_seconds()
    stand_in.set_throttle_rate(0.0)
    stand_in.set_latency(0.0)

    # Then every buyer is stored exactly once
    result = LoadResult(
        settings=settings,
        registrations=registrations,
        wall_seconds=wall_seconds,
        resolve_calls=stand_in.resolve_calls,
        resolve_answers=stand_in.resolve_answers,
        stored=_stored(stack, set(pks)),
        cpu=(
            (cpu_after[0] - cpu_before[0], cpu_after[1] - cpu_before[1])
            if cpu_before and cpu_after
            else None
        ),
    )
    if budget.exceeded:
        result.problems.append(f"stopped early: {budget.exceeded}")
    result.problems += _problems(result, pks)
    return result


def _stored(stack: LocalStack, pks: set[str]) -> Stored:
    client = stack.dynamodb_client()
    counts: dict[str, int] = {}
    sessions: Counter[str] = Counter()
    paginator = client.get_paginator("scan")
    for page in paginator.paginate(TableName=stack.customers_table, ConsistentRead=True):
        for item in page["Items"]:
            kind, pk = item[contract.SK].get("S"), item[contract.PK].get("S", "")
            if kind == contract.CUSTOMER_SK and pk in pks:
                counts[pk] = int(item.get("registration_count", {}).get("N", "0"))
            elif kind == contract.SESSION_SK:
                owner = item.get("customer_pk", {}).get("S", "")
                if owner in pks:
                    sessions[owner] += 1
    return Stored(counts, sessions)


def _problems(result: LoadResult, pks: Sequence[str]) -> list[str]:
    problems: list[str] = []
    unfinished = [r for r in result.registrations if not r.registered]
    if unfinished:
        finals = Counter(_status(r.final) for r in unfinished)
        problems.append(f"{len(unfinished)} registrations did not end in a 303: {dict(finals)}")
    locations = {r.final.location for r in result.registrations if r.registered and r.final}
    registered = sum(1 for r in result.registrations if r.registered)
    if len(locations) != registered:
        problems.append(f"{registered} registrations went to {len(locations)} distinct places")
    stored = result.stored
    missing = [pk for pk in pks if pk not in stored.registration_counts]
    if missing:
        problems.append(f"{len(missing)} customers lost (not in the customers table)")
    repeated = Counter(c for c in stored.registration_counts.values() if c != 1)
    if repeated:
        # E.g. a write that reached DynamoDB, timed out on the client and was retried.
        problems.append(
            f"{repeated.total()} customers with registration_count other than 1 "
            f"(count: customers {dict(repeated)})"
        )
    sessions = [pk for pk in pks if stored.sessions[pk] != 1]
    if sessions:
        problems.append(f"{len(sessions)} customers without exactly one sign-up session")
    ok = result.resolve_answers.get("ok", 0)
    if ok != len(pks):
        problems.append(f"ResolveCustomer answered {ok} times for {len(pks)} tokens")
    return problems


def cpu_seconds() -> tuple[float, float] | None:
    """CPU time so far of this process and of all its descendants (Linux /proc); else None.

    The descendants are still running (the gateway's workers), so os.times() cannot see them.
    """
    try:
        tick = os.sysconf("SC_CLK_TCK")
        own = time.process_time()
        descendants = 0.0
        pending, seen = [os.getpid()], set()
        while pending:
            pid = pending.pop()
            for task in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError):
                    children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
                    for child in map(int, children):
                        if child not in seen:
                            seen.add(child)
                            pending.append(child)
            if pid != os.getpid():
                with contextlib.suppress(OSError):
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    descendants += (int(fields[11]) + int(fields[12])) / tick
        return own, descendants
    except (OSError, ValueError, AttributeError):
        return None


def _status(exchange: Exchange | None) -> str:
    if exchange is None:
        return "not sent"
    return str(exchange.status) if exchange.status is not None else exchange.error


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def _spread(values: Sequence[float]) -> str:
    if not values:
        return "n/a"
    return " / ".join(_ms(percentile(values, p)) for p in (50, 90, 99)) + f" / {_ms(max(values))}"


def render(result: LoadResult, *, workers: int, startup_seconds: float | None = None) -> str:
    """The run as markdown: what was run, what was checked, the figures."""
    settings = result.settings
    registrations = result.registrations
    exchanges = result.exchanges
    answered = [e for e in exchanges if e.status is not None]
    registered = sum(1 for r in registrations if r.registered)
    statuses = Counter(_status(e) for e in exchanges)
    resubmitted = Counter(r.resubmits for r in registrations)
    # A 409 is answered from the idempotency record, without a ResolveCustomer call.
    reaching_marketplace = sum(1 for e in answered if e.status != 409)
    stored = result.stored
    today = datetime.now(UTC).date().isoformat()
    startup = f" (started in {startup_seconds:.1f} s)" if startup_seconds is not None else ""
    intro = (
        f"Last run {today}, `make bench` (`python -m bench --only load`): "
        f"{settings.tokens} registration tokens, each for a different new-style buyer, from "
        f"{settings.clients} concurrent clients against a freshly started local stack{startup}: "
        f"gateway with {workers} function worker processes, moto's DynamoDB behind one lock, "
        f"the registration-events publisher running, the Marketplace stand-in answering with "
        f"{_ms(settings.marketplace_latency_seconds)} added latency and "
        f"{settings.throttle_rate:.0%} of ResolveCustomer calls throttled (seed "
        f"{settings.seed}). A registration that ended on a Try again page (503 or 409) was "
        f"resubmitted through that page's form after {settings.resubmit_pause_seconds:g} s, "
        f"at most {settings.max_resubmits} times. Caps: {settings.max_requests} requests, "
        f"{settings.max_seconds:.0f} s. Machine: {machine()}."
    )
    checks = markdown_table(
        ["check", "expected", "this run"],
        [
            ["customers stored", settings.tokens, len(stored.registration_counts)],
            [
                "... with `registration_count` 1",
                settings.tokens,
                sum(1 for c in stored.registration_counts.values() if c == 1),
            ],
            [
                "customers with exactly one sign-up session",
                settings.tokens,
                sum(1 for n in stored.sessions.values() if n == 1),
            ],
            [
                "registrations lost",
                0,
                sum(1 for r in registrations if r.customer_pk not in stored.registration_counts),
            ],
            ["registrations ending in 303, each its own Location", settings.tokens, registered],
            [
                "ResolveCustomer answered ok (once per token)",
                settings.tokens,
                result.resolve_answers.get("ok", 0),
            ],
        ],
    )
    wall = result.wall_seconds
    figures = markdown_table(
        ["figure", "value"],
        [
            ["wall time (first request to last answer)", f"{wall:.1f} s"],
            [
                "throughput",
                f"{registered / wall:.1f} registrations/s, {len(exchanges) / wall:.1f} requests/s",
            ],
            [
                "HTTP requests",
                f"{len(exchanges)} ({len(registrations)} first submissions + "
                f"{len(exchanges) - len(registrations)} resubmits)",
            ],
            [
                "answers by status",
                ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())),
            ],
            [
                "latency per request, p50 / p90 / p99 / max",
                _spread([e.seconds for e in answered]),
            ],
            [
                "latency per registration (first submission to final answer, resubmits and "
                "pauses included), p50 / p90 / p99 / max",
                _spread([r.seconds for r in registrations]),
            ],
            [
                "registrations by resubmits needed",
                ", ".join(f"{k}: {n}" for k, n in sorted(resubmitted.items())),
            ],
            [
                "ResolveCustomer calls",
                f"{result.resolve_calls} ("
                + ", ".join(f"{k} {n}" for k, n in sorted(result.resolve_answers.items()))
                + ")",
            ],
            [
                "... retried by botocore inside the function (calls minus requests that "
                "reached Marketplace)",
                str(max(0, result.resolve_calls - reaching_marketplace)),
            ],
        ],
    )
    if result.cpu is not None:
        own, children = result.cpu
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        figures += (
            "\n| CPU during the load: this process (moto behind its lock, gateway, stand-in, "
            f"clients; one GIL) / worker processes / available | {own:.1f} s "
            f"({own / wall:.0%} of one CPU) / {children:.1f} s / {cpus * wall:.1f} s |"
        )
    parts = [intro, checks, figures]
    if result.problems:
        parts.append("**Problems:** " + "; ".join(result.problems))
    return "\n\n".join(parts)


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Send this process's and its children's stdout and stderr to ``path`` (the stack's
    gateway lines and function logs would otherwise bury the table)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        with path.open("wb") as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = LoadSettings()
    group = parser.add_argument_group("load")
    group.add_argument("--load-tokens", type=int, default=defaults.tokens, metavar="N")
    group.add_argument("--load-clients", type=int, default=defaults.clients, metavar="N")
    group.add_argument(
        "--load-workers",
        type=int,
        metavar="N",
        help="function worker processes (default: one per client, as Lambda would scale)",
    )
    group.add_argument(
        "--load-throttle-rate", type=float, default=defaults.throttle_rate, metavar="RATE"
    )
    group.add_argument("--load-seed", type=int, default=defaults.seed, metavar="N")
    group.add_argument(
        "--load-latency",
        type=float,
        default=defaults.marketplace_latency_seconds,
        metavar="SECONDS",
        help="added latency of each ResolveCustomer answer",
    )


def run(args: argparse.Namespace) -> Report:
    settings = LoadSettings(
        tokens=args.load_tokens,
        clients=args.load_clients,
        throttle_rate=args.load_throttle_rate,
        seed=args.load_seed,
        marketplace_latency_seconds=args.load_latency,
    )
    workers = int(args.load_workers or settings.clients)
    if settings.tokens > settings.max_requests:
        raise SystemExit(f"--load-tokens above the request cap ({settings.max_requests})")
    print(
        f"load: {settings.tokens} registrations from {settings.clients} clients, {workers} "
        f"workers; stack output goes to {LOG_FILE.relative_to(REPO_ROOT)}",
        flush=True,
    )
    environ = {contract.PRODUCT_CODES: PRODUCT_CODE, "POWERTOOLS_LOG_LEVEL": "WARNING"}
    with _output_to(LOG_FILE):
        started = time.perf_counter()
        stack = start_local_stack(port=0, environ=environ, workers=workers)
        try:
            stack.warm_up()
            startup_seconds = time.perf_counter() - started
            result = measure(stack, settings)
        finally:
            stack.stop()
    return Report(
        markdown=render(result, workers=workers, startup_seconds=startup_seconds),
        document=DOCUMENT,
        document_title="Reliability",
        heading="## Load run",
        marker=MARKER,
        problems=result.problems,
    )


SECTION = Section(
    name="load",
    help="500 distinct registrations, 20 clients, 20 % of Marketplace calls throttled",
    add_arguments=add_arguments,
    run=run,
)
