"""Local stand-in for an API Gateway REST API with Lambda proxy integration (payload 1.0).

Never deployed. Each request runs in a worker process that behaves like a Lambda execution
environment (local/functions.py). A route may name its own handler and may require AWS_IAM
authorization, which is refused with 403 before any function runs when the request is not
SigV4-signed (the shape is checked: there is no IAM here). Paths under ``local_pages`` are the
local stack's own pages and never reach a function.
"""

from __future__ import annotations

import base64
import binascii
import concurrent.futures
import json
import secrets
import sys
import traceback
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote

from fulfillment import contract
from local.functions import ACCOUNT_ID, REGION, FunctionSpec, LambdaContext, Workers
from local.server import HOP_HEADERS, App, LocalRequest, LocalResponse, RunningServer, serve

# Re-exported: the function tests build their contexts and page requests from here.
__all__ = ["LambdaContext", "LocalRequest", "LocalResponse", "Route", "start_gateway"]

MAX_BODY_BYTES = 10 * 1024 * 1024
API_ID = "1234567890"
TIMEOUT_SECONDS = 25.0
# The stage name in requestContext.path. Like an execute-api host, the gateway also serves every
# route under /local/..., so a Location the function builds from requestContext.path (the
# built-in sign-up page, redirects.builtin_signup_path) resolves here too.
STAGE = "local"
_PROXY_RESULT_KEYS = frozenset(
    {"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"}
)

LocalPage = App


@dataclass(frozen=True)
class Route:
    """One method on one resource template, e.g. Route("GET", "/registrations/{id}").

    ``handler`` names the function behind the route ("pkg.module.func"); None means the
    gateway's default handler. ``iam_auth`` mimics AuthorizationType AWS_IAM. ``json_errors``:
    the route belongs to an API without gateway responses (the seller hand-off's), so the
    gateway's own errors on its paths are API Gateway's JSON; elsewhere they are the buyers'
    page (fulfillment.contract.GATEWAY_PAGES, as infra/api.py deploys them).
    """

    method: str
    resource: str
    handler: str | None = None
    iam_auth: bool = False
    json_errors: bool = False


def match_route(
    routes: list[Route], method: str, path: str
) -> tuple[Route, dict[str, str] | None] | None:
    """The route serving method + path and its pathParameters (None when it has none), or
    None: REST APIs answer an unknown path and an undefined method alike, with 403. A literal
    segment wins over a {parameter}."""
    segments = [s for s in path.split("/") if s]
    found: list[tuple[int, Route, dict[str, str]]] = []
    for route in routes:
        template = [s for s in route.resource.split("/") if s]
        if route.method.upper() not in (method.upper(), "ANY") or len(template) != len(segments):
            continue
        params = {
            part[1:-1]: unquote(segment)
            for part, segment in zip(template, segments, strict=True)
            if part.startswith("{")
        }
        if all(p == s for p, s in zip(template, segments, strict=True) if not p.startswith("{")):
            found.append((len(template) - len(params), route, params))
    if not found:
        return None
    _, route, params = max(found, key=lambda candidate: candidate[0])
    return route, params or None


def _signed(authorization: str) -> bool:
    return authorization.startswith("AWS4-HMAC-SHA256 ") and "Signature=" in authorization


def build_event(
    request: LocalRequest, route: Route, path_parameters: dict[str, str] | None
) -> dict[str, Any]:
    """The event API Gateway REST sends to a Lambda proxy integration (payload 1.0). The
    deployed API declares no binary media types, so a body always arrives as text."""
    multi_headers: dict[str, list[str]] = {}
    for name, value in request.header_items:
        multi_headers.setdefault(name, []).append(value)
    multi_query: dict[str, list[str]] = {}
    for name, value in parse_qsl(request.query_string, keep_blank_values=True):
        multi_query.setdefault(name, []).append(value)
    now = datetime.now(UTC)
    domain_name = request.header("Host") or f"{API_ID}.execute-api.{REGION}.amazonaws.com"
    identity = dict.fromkeys(
        (
            "cognitoIdentityPoolId",
            "accountId",
            "cognitoIdentityId",
            "caller",
            "principalOrgId",
            "accessKey",
            "cognitoAuthenticationType",
            "cognitoAuthenticationProvider",
            "userArn",
            "user",
        )
    )
    return {
        "resource": route.resource,
        "path": request.path,
        "httpMethod": request.method,
        "headers": {name: values[-1] for name, values in multi_headers.items()},
        "multiValueHeaders": multi_headers,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourceId": secrets.token_hex(3),
            "resourcePath": route.resource,
            "httpMethod": request.method,
            "extendedRequestId": base64.b64encode(secrets.token_bytes(10)).decode("ascii"),
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"/{STAGE}{request.path}",
            "accountId": ACCOUNT_ID,
            "protocol": "HTTP/1.1",
            "stage": STAGE,
            "domainPrefix": domain_name.split(".", 1)[0].split(":", 1)[0],
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "requestId": str(uuid.uuid4()),
            "identity": {
                **identity,
                "sourceIp": request.client,
                "userAgent": request.header("User-Agent") or None,
            },
            "domainName": domain_name,
            "apiId": API_ID,
        },
        "body": request.body.decode("utf-8", errors="replace") if request.body else None,
        "isBase64Encoded": False,
    }


_GATEWAY_PAGES = {page.response_type: page for page in contract.GATEWAY_PAGES}


def gateway_error(status: int, *, json_errors: bool = False) -> LocalResponse:
    """API Gateway's own answers: 403 for no route or no signature, 413, 400, 502 and 504
    (integration timeout). As deployed: the buyers' page with the security headers, or, on
    the hand-off API's paths (``json_errors``), API Gateway's default JSON."""
    message, error_type = {
        400: ("Bad Request", "BadRequestException"),
        403: ("Missing Authentication Token", "MissingAuthenticationTokenException"),
        413: ("Request Too Long", "RequestEntityTooLargeException"),
        504: ("Endpoint request timed out", "InternalServerErrorException"),
    }.get(status, ("Internal server error", "InternalServerErrorException"))
    status = status if status in (400, 403, 413, 504) else 502
    if json_errors:
        return LocalResponse(
            status,
            [("Content-Type", "application/json"), ("x-amzn-ErrorType", error_type)],
            json.dumps({"message": message}).encode(),
        )
    return _page(status, "INTEGRATION_TIMEOUT" if status == 504 else f"DEFAULT_{status // 100}XX")


def not_found(request: LocalRequest) -> LocalResponse:
    """404 with the buyers' page: a local page for a path the stack does not serve (the
    built-in sign-up page when REGISTRATION_URL is set)."""
    return _page(404, "DEFAULT_4XX")


def _page(status: int, response_type: str) -> LocalResponse:
    headers = {
        **contract.SECURITY_HEADERS,
        "Content-Security-Policy": contract.GATEWAY_PAGE_CSP,
        "Content-Type": "text/html; charset=utf-8",
    }
    body = contract.gateway_page_html(_GATEWAY_PAGES[response_type], str(uuid.uuid4()))
    return LocalResponse(status, list(headers.items()), body.encode())


def _json_error_paths(routes: list[Route]) -> frozenset[str]:
    """The first path segments of the routes whose API answers its own errors in JSON."""
    return frozenset(r.resource.strip("/").split("/", 1)[0] for r in routes if r.json_errors)


class MalformedProxyResultError(ValueError):
    """The function returned something API Gateway would reject as a proxy response."""


def _header_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise MalformedProxyResultError(f"header value of type {type(value).__name__}")


def proxy_result_to_response(result: object) -> LocalResponse:
    """Turn a Lambda proxy result into the HTTP response API Gateway would send."""
    if not isinstance(result, dict) or set(result) - _PROXY_RESULT_KEYS:
        raise MalformedProxyResultError(f"not a proxy result: {str(result)[:200]}")
    status = result.get("statusCode", 200)
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise MalformedProxyResultError(f"statusCode {status!r}")
    single = result.get("headers") or {}
    multi = result.get("multiValueHeaders") or {}
    if not isinstance(single, dict) or not isinstance(multi, dict):
        raise MalformedProxyResultError("headers/multiValueHeaders must be objects")
    if not all(isinstance(values, list) for values in multi.values()):
        raise MalformedProxyResultError("multiValueHeaders values must be lists")
    # Documented merge: for a name in both, only the multiValueHeaders values appear.
    merged = [(str(n), _header_value(v)) for n, values in multi.items() for v in values]
    multi_names = {str(name).lower() for name in multi}
    merged += [
        (str(n), _header_value(v)) for n, v in single.items() if n.lower() not in multi_names
    ]
    merged = [(n, v) for n, v in merged if n.lower() not in HOP_HEADERS]
    body = result.get("body")
    if body is not None and not isinstance(body, str):
        raise MalformedProxyResultError(f"body is {type(body).__name__}, not a string")
    try:
        raw = (
            base64.b64decode(body or "", validate=True)
            if result.get("isBase64Encoded")
            else (body or "").encode("utf-8")
        )
    except binascii.Error as exc:
        raise MalformedProxyResultError("isBase64Encoded body is not base64") from exc
    if not any(n.lower() == "content-type" for n, _ in merged):
        merged.append(("Content-Type", "application/json"))
    return LocalResponse(status, merged, raw)


class _Gateway:
    def __init__(self, routes: list[Route], workers: Workers, pages: Mapping[str, App]) -> None:
        self._routes = routes
        self._workers = workers
        self._pages = pages
        self._json_error_paths = _json_error_paths(routes)

    def __call__(self, request: LocalRequest) -> LocalResponse:
        page = self._pages.get(request.path)
        if page is not None:
            return page(request)
        path = request.path
        if path == f"/{STAGE}" or path.startswith(f"/{STAGE}/"):
            path = path[len(STAGE) + 1 :] or "/"
        found = match_route(self._routes, request.method, path)
        if found is None:
            first_segment = path.strip("/").split("/", 1)[0]
            return gateway_error(403, json_errors=first_segment in self._json_error_paths)
        route, path_parameters = found
        if route.iam_auth and not _signed(request.header("Authorization")):
            return gateway_error(403, json_errors=route.json_errors)
        event = build_event(replace(request, path=unquote(path)), route, path_parameters)
        try:
            ok, result = self._workers.invoke(event, route.handler, timeout=TIMEOUT_SECONDS + 5)
        except concurrent.futures.TimeoutError:
            sys.stderr.write(f"gateway: function timed out on {request.method} {path}\n")
            return gateway_error(504, json_errors=route.json_errors)
        if not ok:
            sys.stderr.write(str(result))
            return gateway_error(502, json_errors=route.json_errors)
        try:
            return proxy_result_to_response(result)
        except MalformedProxyResultError:
            sys.stderr.write("gateway: Malformed Lambda proxy response\n")
            traceback.print_exc()
            return gateway_error(502, json_errors=route.json_errors)


class RunningGateway:
    """A started gateway: its URL, and how to warm and stop it."""

    def __init__(self, server: RunningServer, workers: Workers) -> None:
        self._server = server
        self._workers = workers
        self.port = server.port
        self.url = server.url

    def warm_up(self) -> set[int]:
        """Start every worker and import the handler in each; returns the worker pids."""
        return self._workers.warm_up()

    def stop(self) -> None:
        self._server.stop()
        self._workers.shutdown()


def start_gateway(
    *,
    handler: str,
    routes: list[Route],
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 4,
    environment: Mapping[str, str],
    extra_sys_path: list[str] | None = None,
    local_pages: Mapping[str, App] | None = None,
) -> RunningGateway:
    """Serve ``routes`` on host:port, invoking ``handler`` ("pkg.module.func") or the route's
    own in ``workers`` worker processes."""
    pool = Workers(
        FunctionSpec(handler, "fulfillment-local", 512, TIMEOUT_SECONDS),
        environment=environment,
        count=workers,
        sys_path=extra_sys_path,
    )
    gateway = _Gateway(list(routes), pool, dict(local_pages or {}))
    server = serve(
        gateway,
        host=host,
        port=port,
        name="local-gateway",
        refuse=lambda status, _: gateway_error(status),
        max_body_bytes=MAX_BODY_BYTES,
        access_log="gateway",
    )
    return RunningGateway(server, pool)
