"""Local stand-in for an API Gateway REST API with Lambda proxy integration (payload 1.0).

Never deployed. Each request runs in a spawned worker process that behaves like a Lambda
execution environment: one invocation at a time, module state kept warm between invocations.
"""

from __future__ import annotations

import base64
import binascii
import concurrent.futures
import contextlib
import importlib
import json
import multiprocessing
import os
import secrets
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.synchronize import Barrier
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

MAX_BODY_BYTES = 10 * 1024 * 1024
_MAX_DRAIN_BYTES = 64 * 1024 * 1024
ACCOUNT_ID = "123456789012"
API_ID = "1234567890"
REGION = "us-east-1"
# The stage name in requestContext.path. Like an execute-api host, the gateway also serves every
# route under /local/..., so a Location the function builds from requestContext.path (the
# built-in sign-up page, redirects.builtin_signup_path) resolves here too.
STAGE = "local"

_JSON_HEADERS = {"Content-Type": "application/json"}
_PROXY_RESULT_KEYS = frozenset(
    {"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"}
)
# Framing headers are the gateway's business, never the function's.
_HOP_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})


# --------------------------------------------------------------------------- routes


@dataclass(frozen=True)
class Route:
    """One method on one resource template, e.g. Route("GET", "/registrations/{id}").

    ``handler`` names the function behind the route ("pkg.module.func"); None means the
    gateway's default handler. ``iam_auth`` mimics AuthorizationType AWS_IAM: a request
    without a SigV4 Authorization header is refused with 403 before any function runs.
    """

    method: str
    resource: str
    handler: str | None = None
    iam_auth: bool = False


def _match_template(resource: str, path: str) -> dict[str, str] | None:
    template = [s for s in resource.split("/") if s]
    segments = [s for s in path.split("/") if s]
    params: dict[str, str] = {}
    for index, part in enumerate(template):
        if part.startswith("{") and part.endswith("+}"):
            rest = segments[index:]
            if not rest:
                return None
            params[part[1:-2]] = unquote("/".join(rest))
            return params
        if index >= len(segments):
            return None
        if part.startswith("{") and part.endswith("}"):
            params[part[1:-1]] = unquote(segments[index])
        elif part != segments[index]:
            return None
    return params if len(template) == len(segments) else None


def _specificity(resource: str) -> tuple[int, int]:
    parts = [s for s in resource.split("/") if s]
    literal = sum(1 for p in parts if not p.startswith("{"))
    greedy = sum(1 for p in parts if p.endswith("+}"))
    return (-greedy, literal)


def match_route(
    routes: list[Route], method: str, path: str
) -> tuple[str, dict[str, str] | None] | None:
    """Return (resource, pathParameters or None) for the route serving method + path, or None.

    A known path with an undefined method is None too: REST APIs answer both with 403.
    """
    found = find_route(routes, method, path)
    if found is None:
        return None
    route, params = found
    return route.resource, params


def find_route(
    routes: list[Route], method: str, path: str
) -> tuple[Route, dict[str, str] | None] | None:
    """Like match_route, but returns the Route itself (with its handler and auth)."""
    candidates: list[tuple[tuple[int, int], Route, dict[str, str]]] = []
    for route in routes:
        if route.method.upper() not in (method.upper(), "ANY"):
            continue
        params = _match_template(route.resource, path)
        if params is not None:
            candidates.append((_specificity(route.resource), route, params))
    if not candidates:
        return None
    _, route, params = max(candidates, key=lambda c: c[0])
    return route, (params or None)


def _signed(authorization: str) -> bool:
    # Shape only: the local stack has no IAM to check a signature against.
    return authorization.startswith("AWS4-HMAC-SHA256 ") and "Signature=" in authorization


# --------------------------------------------------------------------------- event


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _is_binary(content_type: str | None, binary_media_types: tuple[str, ...]) -> bool:
    if not content_type or not binary_media_types:
        return False
    media = _media_type(content_type)
    main = media.split("/", 1)[0]
    for pattern in binary_media_types:
        pattern = pattern.strip().lower()
        if pattern in ("*/*", media):
            return True
        if pattern.endswith("/*") and pattern[:-2] == main:
            return True
    return False


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    found = None
    for key, value in headers:
        if key.lower() == name.lower():
            found = value
    return found


def build_event(
    *,
    method: str,
    path: str,
    query: str,
    headers: list[tuple[str, str]],
    body: bytes,
    source_ip: str = "127.0.0.1",
    resource: str,
    path_parameters: dict[str, str] | None,
    stage: str = STAGE,
    binary_media_types: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Build the event API Gateway REST sends to a Lambda proxy integration (payload 1.0)."""
    single_headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, value in headers:
        single_headers[name] = value
        multi_headers.setdefault(name, []).append(value)

    single_query: dict[str, str] = {}
    multi_query: dict[str, list[str]] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        single_query[name] = value
        multi_query.setdefault(name, []).append(value)

    event_body: str | None
    if not body:
        event_body, is_base64 = None, False
    elif _is_binary(_header(headers, "Content-Type"), binary_media_types):
        event_body, is_base64 = base64.b64encode(body).decode("ascii"), True
    else:
        event_body, is_base64 = body.decode("utf-8", errors="replace"), False

    now = datetime.now(UTC)
    domain_name = _header(headers, "Host") or f"{API_ID}.execute-api.{REGION}.amazonaws.com"
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": single_headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": single_query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": secrets.token_hex(3),
            "resourcePath": resource,
            "httpMethod": method,
            "extendedRequestId": base64.b64encode(secrets.token_bytes(10)).decode("ascii"),
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"/{stage}{path}",
            "accountId": ACCOUNT_ID,
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainPrefix": domain_name.split(".", 1)[0].split(":", 1)[0],
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "requestId": str(uuid.uuid4()),
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "sourceIp": source_ip,
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": _header(headers, "User-Agent"),
                "user": None,
            },
            "domainName": domain_name,
            "apiId": API_ID,
        },
        "body": event_body,
        "isBase64Encoded": is_base64,
    }


# --------------------------------------------------------------------------- responses


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def _gateway_error(status: int, message: str, error_type: str) -> HttpResponse:
    body = json.dumps({"message": message}).encode()
    return HttpResponse(
        status,
        [("Content-Type", "application/json"), ("x-amzn-ErrorType", error_type)],
        body,
    )


def missing_token_response() -> HttpResponse:
    return _gateway_error(
        403, "Missing Authentication Token", "MissingAuthenticationTokenException"
    )


def internal_error_response() -> HttpResponse:
    return _gateway_error(502, "Internal server error", "InternalServerErrorException")


def too_large_response() -> HttpResponse:
    return _gateway_error(413, "Request Too Long", "RequestEntityTooLargeException")


class MalformedProxyResultError(ValueError):
    """The function returned something API Gateway would reject as a proxy response."""


def _str_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise MalformedProxyResultError(f"header value of type {type(value).__name__}")


def proxy_result_to_response(result: object) -> HttpResponse:
    """Turn a Lambda proxy result into the HTTP response API Gateway would send."""
    if not isinstance(result, dict):
        raise MalformedProxyResultError(f"result is {type(result).__name__}, not an object")
    unknown = set(result) - _PROXY_RESULT_KEYS
    if unknown:
        raise MalformedProxyResultError(f"unexpected keys {sorted(unknown)}")
    status = result.get("statusCode", 200)
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise MalformedProxyResultError(f"statusCode {status!r}")

    single = result.get("headers") or {}
    multi = result.get("multiValueHeaders") or {}
    if not isinstance(single, dict) or not isinstance(multi, dict):
        raise MalformedProxyResultError("headers/multiValueHeaders must be objects")
    # Documented merge: for a name in both, only the multiValueHeaders values appear.
    merged: list[tuple[str, str]] = []
    multi_names = set()
    for name, values in multi.items():
        if not isinstance(values, list):
            raise MalformedProxyResultError(f"multiValueHeaders[{name!r}] is not a list")
        multi_names.add(str(name).lower())
        merged.extend((str(name), _str_value(v)) for v in values)
    for name, value in single.items():
        if str(name).lower() not in multi_names:
            merged.append((str(name), _str_value(value)))
    merged = [(n, v) for n, v in merged if n.lower() not in _HOP_HEADERS]

    body = result.get("body")
    if body is None:
        raw = b""
    elif isinstance(body, str):
        if result.get("isBase64Encoded"):
            try:
                raw = base64.b64decode(body, validate=True)
            except binascii.Error as exc:
                raise MalformedProxyResultError("isBase64Encoded body is not base64") from exc
        else:
            raw = body.encode("utf-8")
    else:
        raise MalformedProxyResultError(f"body is {type(body).__name__}, not a string")
    if not any(n.lower() == "content-type" for n, _ in merged):
        merged.append(("Content-Type", "application/json"))
    return HttpResponse(status, merged, raw)


# --------------------------------------------------------------------------- worker side


class LambdaContext:
    """The parts of the Lambda context object that Powertools and handlers read."""

    def __init__(
        self,
        *,
        function_name: str,
        memory_limit_in_mb: int,
        timeout_seconds: float,
        log_stream_name: str,
        aws_request_id: str | None = None,
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}"
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = aws_request_id or str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = log_stream_name
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class _WorkerState:
    handler_path: str = ""
    function_name: str = "fulfillment-local"
    memory_limit_in_mb: int = 512
    timeout_seconds: float = 25.0
    barrier: Barrier | None = None
    handlers: dict[str, Callable[[dict[str, Any], LambdaContext], Any]] = field(
        default_factory=dict
    )
    # One log stream per execution environment, as in CloudWatch.
    log_stream_name: str = field(
        default_factory=lambda: f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
    )


_worker = _WorkerState()


def prepare_worker_process(environment: Mapping[str, str], sys_path: list[str]) -> None:
    """Make a freshly spawned worker look like an execution environment: ``sys_path``
    importable, ``environment`` set, output line-buffered."""
    # Function logs must show up as they happen, not when a pipe buffer fills.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(line_buffering=True)
    for entry in reversed(sys_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    os.environ.update(environment)


def _init_worker(
    handler_path: str,
    extra_sys_path: list[str],
    environment: dict[str, str],
    function_name: str,
    memory_limit_in_mb: int,
    timeout_seconds: float,
    barrier: Barrier,
) -> None:
    prepare_worker_process(environment, extra_sys_path)
    _worker.handler_path = handler_path
    _worker.function_name = function_name
    _worker.memory_limit_in_mb = memory_limit_in_mb
    _worker.timeout_seconds = timeout_seconds
    _worker.barrier = barrier


def _load_handler(path: str | None = None) -> Callable[[dict[str, Any], LambdaContext], Any]:
    # Imported on first use, like Lambda's init phase; a failed init is retried next time.
    path = path or _worker.handler_path
    if path not in _worker.handlers:
        module_name, _, attribute = path.rpartition(".")
        module = importlib.import_module(module_name)
        _worker.handlers[path] = getattr(module, attribute)
    return _worker.handlers[path]


def _warm() -> int:
    try:
        _load_handler()
    except Exception:
        traceback.print_exc()
    if _worker.barrier is not None:
        with contextlib.suppress(threading.BrokenBarrierError):
            _worker.barrier.wait(timeout=60)
    return os.getpid()


def _invoke(event: dict[str, Any], handler_path: str | None = None) -> tuple[bool, Any]:
    """Run the handler once; returns (ok, JSON-safe result or error text)."""
    context = LambdaContext(
        function_name=_worker.function_name,
        memory_limit_in_mb=_worker.memory_limit_in_mb,
        timeout_seconds=_worker.timeout_seconds,
        log_stream_name=_worker.log_stream_name,
    )
    return run_handler(lambda: _load_handler(handler_path), event, context)


def run_handler(
    load: Callable[[], Callable[[dict[str, Any], LambdaContext], Any]],
    event: dict[str, Any],
    context: LambdaContext,
) -> tuple[bool, Any]:
    """Call the handler ``load`` returns once; (ok, JSON-safe result or the traceback)."""
    try:
        result = load()(event, context)
        # Round-trip through JSON as Lambda does: non-serializable results are errors.
        return True, json.loads(json.dumps(result))
    except Exception:
        return False, traceback.format_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


# --------------------------------------------------------------------------- HTTP server


@dataclass
class LocalRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class LocalResponse:
    status: int
    headers: dict[str, str]
    body: bytes


LocalPage = Callable[[LocalRequest], LocalResponse]


class _WorkerPool:
    """Spawned worker processes; rebuilt if one dies hard, as Lambda replaces a dead sandbox."""

    def __init__(self, workers: int, initargs: tuple[Any, ...]) -> None:
        self._ctx = multiprocessing.get_context("spawn")
        self.workers = workers
        self.barrier = self._ctx.Barrier(workers)
        self._initargs = (*initargs, self.barrier)
        self._lock = threading.Lock()
        self._executor = self._new_executor()

    def _new_executor(self) -> concurrent.futures.ProcessPoolExecutor:
        return concurrent.futures.ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=self._ctx,
            initializer=_init_worker,
            initargs=self._initargs,
        )

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        with self._lock:
            try:
                return self._executor.submit(fn, *args)
            except BrokenProcessPool:
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = self._new_executor()
                return self._executor.submit(fn, *args)

    def shutdown(self) -> None:
        with self._lock:
            self._executor.shutdown(wait=True, cancel_futures=True)


@dataclass
class _GatewayConfig:
    routes: list[Route]
    pool: _WorkerPool
    local_pages: Mapping[str, LocalPage]
    binary_media_types: tuple[str, ...]
    timeout_seconds: float


class _BodyTooLargeError(Exception):
    pass


class _GatewayServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], config: _GatewayConfig) -> None:
        self.config = config
        super().__init__(address, _GatewayHandler)


class _GatewayHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _GatewayServer

    def log_message(self, format: str, *args: Any) -> None:
        # The default lines carry the request line, whose query string may hold a token.
        return

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline(1024).split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY_BYTES:
                    raise _BodyTooLargeError
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            # Drain a moderately oversized body so the client reads the 413 instead of a reset.
            remaining = length if length <= _MAX_DRAIN_BYTES else 0
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                remaining -= len(chunk)
            raise _BodyTooLargeError
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        started = time.perf_counter()
        parts = urlsplit(self.path)
        path = parts.path or "/"
        try:
            body = self._read_body()
        except _BodyTooLargeError:
            self.close_connection = True
            response = too_large_response()
        except ValueError:
            self.close_connection = True
            response = _gateway_error(400, "Bad Request", "BadRequestException")
        else:
            response = self._dispatch(path, parts.query, body)
        elapsed = (time.perf_counter() - started) * 1000
        # Logged before the write so the line is out by the time the client has its answer.
        sys.stderr.write(f"gateway {self.command} {path} {response.status} {elapsed:.1f}ms\n")
        self._send(response)

    def _dispatch(self, path: str, query: str, body: bytes) -> HttpResponse:
        config = self.server.config
        page = config.local_pages.get(path)
        if page is not None:
            request = LocalRequest(
                method=self.command,
                path=path,
                query=dict(parse_qsl(query, keep_blank_values=True)),
                headers=dict(self.headers.items()),
                body=body,
            )
            try:
                local = page(request)
            except Exception:
                traceback.print_exc()
                return internal_error_response()
            return HttpResponse(local.status, list(local.headers.items()), local.body)

        stage_prefix = f"/{STAGE}"
        if path == stage_prefix or path.startswith(stage_prefix + "/"):
            path = path[len(stage_prefix) :] or "/"
        found = find_route(config.routes, self.command, path)
        if found is None:
            return missing_token_response()
        route, path_parameters = found
        resource = route.resource
        if route.iam_auth and not _signed(self.headers.get("Authorization", "")):
            return missing_token_response()
        event = build_event(
            method=self.command,
            path=unquote(path),
            query=query,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            resource=resource,
            path_parameters=path_parameters,
            binary_media_types=config.binary_media_types,
        )
        try:
            future = config.pool.submit(_invoke, event, route.handler)
            ok, result = future.result(timeout=config.timeout_seconds + 5)
        except concurrent.futures.TimeoutError:
            sys.stderr.write(f"gateway: function timed out on {self.command} {path}\n")
            return internal_error_response()
        except Exception:
            traceback.print_exc()
            return internal_error_response()
        if not ok:
            sys.stderr.write(str(result))
            return internal_error_response()
        try:
            return proxy_result_to_response(result)
        except MalformedProxyResultError:
            sys.stderr.write("gateway: Malformed Lambda proxy response\n")
            traceback.print_exc()
            return internal_error_response()

    def _send(self, response: HttpResponse) -> None:
        self.send_response_only(response.status)
        self.send_header("Date", self.date_time_string())
        for name, value in response.headers:
            if name.lower() not in _HOP_HEADERS:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = _handle
    do_HEAD = _handle
    do_POST = _handle
    do_PUT = _handle
    do_PATCH = _handle
    do_DELETE = _handle
    do_OPTIONS = _handle


class RunningGateway:
    """A started gateway: its URL, and how to warm and stop it."""

    def __init__(
        self,
        server: _GatewayServer,
        thread: threading.Thread,
        pool: _WorkerPool,
    ) -> None:
        self._server = server
        self._thread = thread
        self._pool = pool
        host, port = server.server_address[:2]
        self.port: int = int(port)
        self.url: str = f"http://{host!s}:{self.port}"

    def warm_up(self) -> set[int]:
        """Start every worker and import the handler in each; returns the worker pids."""
        # Each task waits on a barrier sized to the pool, so no worker can take two of them.
        futures = [self._pool.submit(_warm) for _ in range(self._pool.workers)]
        pids = {f.result(timeout=120) for f in futures}
        if self._pool.barrier.broken:
            self._pool.barrier.reset()
        return pids

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        self._pool.shutdown()


def start_gateway(
    *,
    handler: str,
    routes: list[Route],
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 4,
    environment: dict[str, str],
    extra_sys_path: list[str],
    local_pages: dict[str, LocalPage] | None = None,
    binary_media_types: tuple[str, ...] = (),
    timeout_seconds: float = 25.0,
    function_name: str = "fulfillment-local",
    memory_limit_in_mb: int = 512,
) -> RunningGateway:
    """Serve `routes` on host:port, invoking `handler` ("pkg.module.func") in worker processes."""
    pool = _WorkerPool(
        workers,
        (
            handler,
            [os.path.abspath(p) for p in extra_sys_path],
            dict(environment),
            function_name,
            memory_limit_in_mb,
            timeout_seconds,
        ),
    )
    config = _GatewayConfig(
        routes=list(routes),
        pool=pool,
        local_pages=dict(local_pages or {}),
        binary_media_types=tuple(binary_media_types),
        timeout_seconds=timeout_seconds,
    )
    server = _GatewayServer((host, port), config)
    thread = threading.Thread(target=server.serve_forever, name="local-gateway", daemon=True)
    thread.start()
    return RunningGateway(server, thread, pool)
