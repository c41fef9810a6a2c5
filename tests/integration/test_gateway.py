"""The local API Gateway stand-in: event shape, routing, responses, worker processes."""

from __future__ import annotations

import base64
import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from local.gateway import (
    MAX_BODY_BYTES,
    LocalRequest,
    LocalResponse,
    Route,
    RunningGateway,
    build_event,
    match_route,
    proxy_result_to_response,
    start_gateway,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
HANDLER = "tests.integration.echo_handler.lambda_handler"
ROUTES = [
    Route("GET", "/"),
    Route("POST", "/"),
    Route("GET", "/echo"),
    Route("POST", "/echo"),
    Route("GET", "/registrations/{id}"),
    Route("GET", "/slow"),
    Route("GET", "/boom"),
    Route("GET", "/malformed"),
    Route("GET", "/binary"),
    Route("GET", "/cookies"),
    Route("GET", "/powertools"),
]
BINARY_BODY = b"\x89PNG\r\n\x1a\n\x00\xff"


@dataclass
class Reply:
    status: int
    headers: Message
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    base_url: str,
    path: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: list[tuple[str, str]] | None = None,
) -> Reply:
    request = urllib.request.Request(base_url + path, data=body, method=method)
    for name, value in headers or []:
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Reply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.headers, error.read())


def _start(**overrides: Any) -> RunningGateway:
    options: dict[str, Any] = {
        "handler": HANDLER,
        "routes": ROUTES,
        "port": 0,
        "workers": 2,
        "environment": {"POWERTOOLS_SERVICE_NAME": "echo", "ECHO_SETTING": "from-gateway"},
        "extra_sys_path": [str(REPO_ROOT)],
    }
    options.update(overrides)
    return start_gateway(**options)


def _local_page(request: LocalRequest) -> LocalResponse:
    text = f"{request.method} {request.path} {request.query.get('id', '')}"
    return LocalResponse(200, {"Content-Type": "text/plain"}, text.encode())


@pytest.fixture(scope="module")
def gateway() -> Iterator[RunningGateway]:
    running = _start(local_pages={"/_local/registration": _local_page})
    running.warm_up()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def binary_gateway() -> Iterator[RunningGateway]:
    running = _start(workers=1, binary_media_types=("*/*",))
    yield running
    running.stop()


def echo(gateway: RunningGateway, path: str, **kwargs: Any) -> dict[str, Any]:
    reply = call(gateway.url, path, **kwargs)
    assert reply.status == 200, reply.body
    result: dict[str, Any] = reply.json()
    return result


# --------------------------------------------------------------------------- over HTTP


def test_form_post_body_reaches_the_function_as_text(gateway: RunningGateway) -> None:
    # Given a sign-up form post, as AWS Marketplace sends it
    form = b"x-amzn-marketplace-token=abc%2Bdef%2F%3D%3D&plan=basic"

    # When it goes through the gateway
    event = echo(
        gateway,
        "/",
        method="POST",
        body=form,
        headers=[("Content-Type", "application/x-www-form-urlencoded")],
    )["event"]

    # Then the function sees the raw form text, not base64
    assert event["body"] == form.decode()
    assert event["isBase64Encoded"] is False
    assert event["httpMethod"] == "POST"
    assert event["resource"] == "/"
    assert event["headers"]["Content-Type"] == "application/x-www-form-urlencoded"


def test_binary_media_types_make_the_body_base64(binary_gateway: RunningGateway) -> None:
    event = echo(
        binary_gateway,
        "/echo",
        method="POST",
        body=b"a=1&b=\xff",
        headers=[("Content-Type", "application/x-www-form-urlencoded")],
    )["event"]

    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"a=1&b=\xff"


def test_query_strings_are_decoded_like_api_gateway(gateway: RunningGateway) -> None:
    event = echo(gateway, "/echo?plus=a+b&enc=a%2Bb%2Fc%3D%3D&blank=&t=x%20y")["event"]

    assert event["queryStringParameters"] == {
        "plus": "a b",
        "enc": "a+b/c==",
        "blank": "",
        "t": "x y",
    }


def test_repeated_query_parameters_and_headers_are_multi_valued(gateway: RunningGateway) -> None:
    # urllib folds repeated headers into one, so this client writes them itself.
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    try:
        connection.putrequest("GET", "/echo?tag=one&tag=two")
        connection.putheader("X-Trace", "first")
        connection.putheader("X-Trace", "second")
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 200
        event = json.loads(response.read())["event"]
    finally:
        connection.close()

    assert event["queryStringParameters"] == {"tag": "two"}
    assert event["multiValueQueryStringParameters"] == {"tag": ["one", "two"]}
    assert event["headers"]["X-Trace"] == "second"
    assert event["multiValueHeaders"]["X-Trace"] == ["first", "second"]


def test_event_has_the_rest_proxy_shape(gateway: RunningGateway) -> None:
    body = echo(gateway, "/echo")
    event = body["event"]

    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    assert event["pathParameters"] is None
    assert event["stageVariables"] is None
    assert event["body"] is None
    context = event["requestContext"]
    assert context["path"] == "/local/echo"
    assert context["stage"] == "local"
    assert context["resourcePath"] == "/echo"
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["identity"]["userAgent"].startswith("Python-urllib")
    assert abs(context["requestTimeEpoch"] / 1000 - time.time()) < 60
    assert 20_000 < body["remaining_ms"] <= 25_000


def test_path_parameters_are_extracted(gateway: RunningGateway) -> None:
    event = echo(gateway, "/registrations/cust-42")["event"]

    assert event["resource"] == "/registrations/{id}"
    assert event["path"] == "/registrations/cust-42"
    assert event["pathParameters"] == {"id": "cust-42"}


def test_unknown_path_and_undefined_method_answer_403(gateway: RunningGateway) -> None:
    for method, path in [("GET", "/nowhere"), ("DELETE", "/echo"), ("POST", "/registrations/1")]:
        reply = call(gateway.url, path, method=method)

        assert reply.status == 403, (method, path)
        assert reply.json() == {"message": "Missing Authentication Token"}


def test_body_over_10_mib_answers_413(gateway: RunningGateway) -> None:
    reply = call(gateway.url, "/echo", method="POST", body=b"x" * (MAX_BODY_BYTES + 1))

    assert reply.status == 413


def test_handler_exception_answers_502(
    gateway: RunningGateway, capfd: pytest.CaptureFixture[str]
) -> None:
    reply = call(gateway.url, "/boom")

    assert reply.status == 502
    assert reply.json() == {"message": "Internal server error"}
    assert "the handler failed on purpose" in capfd.readouterr().err


def test_malformed_result_answers_502(gateway: RunningGateway) -> None:
    reply = call(gateway.url, "/malformed")

    assert reply.status == 502
    assert reply.json() == {"message": "Internal server error"}


def test_multi_value_set_cookie_headers(gateway: RunningGateway) -> None:
    request = urllib.request.Request(gateway.url + "/cookies")
    opener = urllib.request.build_opener(_NoRedirect())
    with pytest.raises(urllib.error.HTTPError) as raised:
        opener.open(request, timeout=30)

    error = raised.value
    assert error.code == 303
    assert error.headers.get_all("Set-Cookie") == ["a=1; HttpOnly", "b=2; Secure"]
    assert error.headers["Location"] == "/signup"
    assert error.headers["Cache-Control"] == "no-store"
    assert error.headers["Content-Length"] == "0"


def test_base64_result_is_decoded(gateway: RunningGateway) -> None:
    reply = call(gateway.url, "/binary")

    assert reply.status == 200
    assert reply.headers["Content-Type"] == "image/png"
    assert reply.body == BINARY_BODY


def test_each_request_gets_a_fresh_request_id(gateway: RunningGateway) -> None:
    first = echo(gateway, "/echo")
    second = echo(gateway, "/echo")

    assert (
        first["event"]["requestContext"]["requestId"]
        != (second["event"]["requestContext"]["requestId"])
    )
    assert first["aws_request_id"] != second["aws_request_id"]


def test_concurrent_requests_use_separate_warm_workers(gateway: RunningGateway) -> None:
    # Given two warm workers
    # When four slow requests arrive at once
    with ThreadPoolExecutor(max_workers=4) as clients:
        bodies = list(clients.map(lambda _: echo(gateway, "/slow"), range(4)))

    # Then more than one process served them, and each kept its module state between calls
    by_pid: dict[int, list[int]] = {}
    for body in bodies:
        by_pid.setdefault(body["pid"], []).append(body["invocations"])
    assert len(by_pid) > 1
    assert all(len(set(counts)) == len(counts) for counts in by_pid.values())
    assert max(max(counts) for counts in by_pid.values()) >= 2


def test_powertools_accepts_the_context(gateway: RunningGateway) -> None:
    body = echo(gateway, "/powertools")

    assert body["keys"]["function_name"] == "fulfillment-local"
    assert body["keys"]["function_memory_size"] == 512
    assert body["keys"]["function_request_id"]
    assert body["keys"]["service"] == "echo"
    assert 0 < body["remaining"] <= 25_000


def test_local_pages_bypass_the_function(gateway: RunningGateway) -> None:
    reply = call(gateway.url, "/_local/registration?id=7")

    assert reply.status == 200
    assert reply.body == b"GET /_local/registration 7"


def test_access_log_has_path_and_status_but_never_the_query(
    gateway: RunningGateway, capfd: pytest.CaptureFixture[str]
) -> None:
    call(gateway.url, "/echo?token=SECRET-TOKEN-VALUE")

    # The line is written just after the response is sent.
    err = ""
    for _ in range(50):
        err += capfd.readouterr().err
        if "GET /echo 200" in err:
            break
        time.sleep(0.02)
    assert "GET /echo 200" in err
    assert "SECRET-TOKEN-VALUE" not in err


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# --------------------------------------------------------------------------- pure functions


def _event(**overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "method": "GET",
        "path": "/",
        "query": "",
        "headers": [("Host", "localhost:8000")],
        "body": b"",
        "resource": "/",
        "path_parameters": None,
    }
    options.update(overrides)
    return build_event(**options)


def test_build_event_uses_none_for_empty_query_body_and_path_parameters() -> None:
    event = _event()

    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    assert event["body"] is None
    assert event["isBase64Encoded"] is False
    assert event["pathParameters"] is None
    assert event["requestContext"]["domainName"] == "localhost:8000"
    assert event["requestContext"]["domainPrefix"] == "localhost"
    identity = event["requestContext"]["identity"]
    assert identity["user"] is None
    assert identity["cognitoIdentityPoolId"] is None


def test_build_event_request_time_format() -> None:
    request_time = _event()["requestContext"]["requestTime"]

    time.strptime(request_time, "%d/%b/%Y:%H:%M:%S +0000")


@pytest.mark.parametrize(
    ("content_type", "binary"),
    [
        ("image/png", True),
        ("image/svg+xml; charset=utf-8", True),
        ("application/octet-stream", True),
        ("text/plain", False),
        ("application/x-www-form-urlencoded", False),
    ],
)
def test_build_event_binary_media_type_patterns(content_type: str, binary: bool) -> None:
    event = _event(
        method="POST",
        headers=[("content-type", content_type)],
        body=b"\xff\x00",
        binary_media_types=("image/*", "application/octet-stream"),
    )

    assert event["isBase64Encoded"] is binary
    if binary:
        assert base64.b64decode(event["body"]) == b"\xff\x00"
    else:
        assert event["body"] == "\ufffd\x00"


def test_match_route_prefers_literal_segments() -> None:
    routes = [Route("GET", "/registrations/{id}"), Route("GET", "/registrations/new")]

    assert match_route(routes, "GET", "/registrations/new") == ("/registrations/new", None)
    assert match_route(routes, "GET", "/registrations/a%20b") == (
        "/registrations/{id}",
        {"id": "a b"},
    )
    assert match_route(routes, "GET", "/registrations") is None
    assert match_route(routes, "GET", "/registrations/1/2") is None
    assert match_route(routes, "POST", "/registrations/1") is None


def test_proxy_result_merges_headers_with_multi_value_headers_winning() -> None:
    response = proxy_result_to_response(
        {
            "statusCode": 201,
            "headers": {"X-One": "single", "X-Both": "from-headers"},
            "multiValueHeaders": {"X-Both": ["m1", "m2"]},
            "body": "ok",
        }
    )

    assert response.status == 201
    assert ("X-One", "single") in response.headers
    assert [v for n, v in response.headers if n == "X-Both"] == ["m1", "m2"]
    assert response.body == b"ok"
