"""The local API Gateway stand-in over HTTP: event shape, routing, responses, worker processes."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from fulfillment.contract import GATEWAY_PAGE_CSP, SECURITY_HEADERS
from local.gateway import MAX_BODY_BYTES, Route, RunningGateway, match_route, start_gateway

REPO_ROOT = Path(__file__).resolve().parents[2]
ROUTES = [
    Route("GET", "/"),
    Route("POST", "/"),
    Route("GET", "/echo"),
    Route("POST", "/echo"),
    Route("GET", "/registrations/{id}", iam_auth=True, json_errors=True),
    Route("GET", "/slow"),
    Route("GET", "/boom"),
    Route("GET", "/malformed"),
    Route("GET", "/cookies"),
]
SIGNED = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/us-east-1/execute-api/aws4_request, "
SIGNED += "SignedHeaders=host;x-amz-date, Signature=0123abcd"


@pytest.fixture(scope="module")
def gateway() -> Iterator[RunningGateway]:
    running = start_gateway(
        handler="tests.integration.echo_handler.lambda_handler",
        routes=ROUTES,
        port=0,
        workers=2,
        environment={"POWERTOOLS_SERVICE_NAME": "echo"},
        extra_sys_path=[str(REPO_ROOT)],
    )
    running.warm_up()
    yield running
    running.stop()


def call(
    gateway: RunningGateway,
    path: str,
    method: str = "GET",
    body: bytes | None = None,
    headers: Sequence[tuple[str, str]] = (),
) -> tuple[int, http.client.HTTPMessage, bytes]:
    # http.client writes repeated headers as given (urllib would fold them into one).
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    try:
        connection.putrequest(method, path)
        for name, value in [*headers, ("Content-Length", str(len(body or b"")))]:
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def echo(gateway: RunningGateway, path: str, **kwargs: Any) -> dict[str, Any]:
    status, _, body = call(gateway, path, **kwargs)
    assert status == 200, body
    result: dict[str, Any] = json.loads(body)
    return result


def test_a_form_post_reaches_the_function_as_a_rest_proxy_event(gateway: RunningGateway) -> None:
    # Given a sign-up form post, as AWS Marketplace sends it, with repeated parameters
    form = b"x-amzn-marketplace-token=abc%2Bdef%2F%3D%3D&plan=basic"

    # When it goes through the gateway
    echoed = echo(
        gateway,
        "/echo?plus=a+b&enc=a%2Bb%2Fc%3D%3D&blank=&tag=one&tag=two",
        method="POST",
        body=form,
        headers=[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Trace", "first"),
            ("X-Trace", "second"),
        ],
    )
    event = echoed["event"]

    # Then the function sees the raw form text and API Gateway's decoding of everything else
    assert (event["body"], event["isBase64Encoded"]) == (form.decode(), False)
    assert (event["httpMethod"], event["resource"], event["path"]) == ("POST", "/echo", "/echo")
    assert event["queryStringParameters"] == {
        "plus": "a b",
        "enc": "a+b/c==",
        "blank": "",
        "tag": "two",
    }
    assert event["multiValueQueryStringParameters"]["tag"] == ["one", "two"]
    assert event["headers"]["X-Trace"] == "second"
    assert event["multiValueHeaders"]["X-Trace"] == ["first", "second"]
    assert event["pathParameters"] is None and event["stageVariables"] is None
    context = event["requestContext"]
    assert (context["path"], context["stage"], context["resourcePath"]) == (
        "/local/echo",
        "local",
        "/echo",
    )
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert abs(context["requestTimeEpoch"] / 1000 - time.time()) < 60
    time.strptime(context["requestTime"], "%d/%b/%Y:%H:%M:%S +0000")
    assert 20_000 < echoed["remaining_ms"] <= 25_000

    # And a GET without a query or body has None where API Gateway puts None, and its own ids
    again = echo(gateway, "/echo")
    assert again["event"]["queryStringParameters"] is None
    assert again["event"]["body"] is None
    assert again["event"]["requestContext"]["requestId"] != context["requestId"]
    assert again["aws_request_id"] != echoed["aws_request_id"]


def test_an_iam_route_refuses_unsigned_requests_before_any_function_runs(
    gateway: RunningGateway,
) -> None:
    status, _, body = call(gateway, "/registrations/cust-42")
    assert (status, json.loads(body)) == (403, {"message": "Missing Authentication Token"})

    event = echo(gateway, "/registrations/cust%2042", headers=[("Authorization", SIGNED)])["event"]

    assert event["resource"] == "/registrations/{id}"
    assert event["pathParameters"] == {"id": "cust 42"}


def _is_the_buyers_page(headers: http.client.HTTPMessage, body: bytes, title: str) -> bool:
    """The page infra/api.py deploys as the buyers' API's gateway responses."""
    return (
        headers["Content-Type"] == "text/html; charset=utf-8"
        and headers["Content-Security-Policy"] == GATEWAY_PAGE_CSP
        and all(headers[name] == value for name, value in SECURITY_HEADERS.items())
        and body.startswith(b"<!doctype html>")
        and f"<h1>{title}</h1>".encode() in body
    )


def test_unknown_paths_undefined_methods_and_huge_bodies_are_refused(
    gateway: RunningGateway,
) -> None:
    # On the buyers' API: a page with the security headers, API Gateway's status
    for method, path in [("GET", "/nowhere"), ("DELETE", "/echo")]:
        status, headers, body = call(gateway, path, method=method)
        assert status == 403
        assert _is_the_buyers_page(headers, body, "This page is not available"), body

    # On the hand-off API's paths: API Gateway's JSON
    status, _, body = call(gateway, "/registrations/1", method="POST")
    assert (status, json.loads(body)) == (403, {"message": "Missing Authentication Token"})

    status, headers, body = call(gateway, "/echo", method="POST", body=b"x" * (MAX_BODY_BYTES + 1))
    assert status == 413
    assert _is_the_buyers_page(headers, body, "This page is not available")


def test_a_failing_function_or_a_malformed_result_answers_502(
    gateway: RunningGateway, capfd: pytest.CaptureFixture[str]
) -> None:
    for path in ("/boom", "/malformed"):
        status, headers, body = call(gateway, path)
        assert status == 502
        assert _is_the_buyers_page(headers, body, "Something went wrong"), body
    assert "the handler failed on purpose" in capfd.readouterr().err


def test_multi_value_headers_win_and_every_set_cookie_is_sent(gateway: RunningGateway) -> None:
    status, headers, body = call(gateway, "/cookies")

    assert status == 303
    assert headers.get_all("Set-Cookie") == ["a=1; HttpOnly", "b=2; Secure"]
    assert headers["Location"] == "/signup"
    assert headers["Cache-Control"] == "no-store"
    assert (headers["Content-Length"], body) == ("0", b"")


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


def test_access_log_has_path_and_status_but_never_the_query(
    gateway: RunningGateway, capfd: pytest.CaptureFixture[str]
) -> None:
    call(gateway, "/echo?token=SECRET-TOKEN-VALUE")

    # The line is written just before the response is sent.
    err = ""
    for _ in range(50):
        err += capfd.readouterr().err
        if "GET /echo 200" in err:
            break
        time.sleep(0.02)
    assert "GET /echo 200" in err
    assert "SECRET-TOKEN-VALUE" not in err


def test_a_literal_segment_wins_over_a_parameter() -> None:
    routes = [Route("GET", "/registrations/{id}"), Route("GET", "/registrations/new")]

    assert match_route(routes, "GET", "/registrations/new") == (routes[1], None)
    assert match_route(routes, "GET", "/registrations/a%20b") == (routes[0], {"id": "a b"})
    assert match_route(routes, "GET", "/registrations") is None
    assert match_route(routes, "GET", "/registrations/1/2") is None
    assert match_route(routes, "POST", "/registrations/1") is None
