"""The local Marketplace stand-in, driven over HTTP by the real boto3 client and a raw client."""

from __future__ import annotations

import http.client
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from local.marketplace import (
    MarketplaceStandIn,
    RunningServer,
    TestCustomer,
    default_customers,
    generated_customer,
    start_server,
)

if TYPE_CHECKING:
    from botocore.config import _RetryDict
    from mypy_boto3_meteringmarketplace import MarketplaceMeteringClient

PRODUCT_CODE = "prod-standintest0"
FULFILLMENT_URL = "http://127.0.0.1:8000/"
REPO_ROOT = Path(__file__).resolve().parents[2]


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stand_in() -> MarketplaceStandIn:
    return MarketplaceStandIn(default_customers(PRODUCT_CODE))


@pytest.fixture(scope="module")
def server(stand_in: MarketplaceStandIn) -> Iterator[RunningServer]:
    running = start_server(stand_in, port=0, fulfillment_url=FULFILLMENT_URL)
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def _fresh_stand_in(stand_in: MarketplaceStandIn) -> None:
    stand_in.reset()


def _metering_client(url: str, retries: _RetryDict) -> MarketplaceMeteringClient:
    return boto3.client(
        "meteringmarketplace",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries=retries),
    )


@pytest.fixture(scope="module")
def metering(server: RunningServer) -> MarketplaceMeteringClient:
    return _metering_client(server.url, {"total_max_attempts": 1})


def _error_of(metering: MarketplaceMeteringClient, token: str) -> tuple[str, int]:
    with pytest.raises(ClientError) as caught:
        metering.resolve_customer(RegistrationToken=token)
    response: Any = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def _request(
    server: RunningServer,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def _admin(server: RunningServer, path: str, payload: object = None) -> tuple[int, Any]:
    if path == "/_admin/state":
        status, _, body = _request(server, "GET", path)
    else:
        raw = b"" if payload is None else json.dumps(payload).encode()
        status, _, body = _request(server, "POST", path, raw, {"Content-Type": "application/json"})
    return status, json.loads(body)


def _resolve_raw(server: RunningServer, body: bytes, target: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/x-amz-json-1.1"}
    headers["X-Amz-Target"] = target or "AWSMPMeteringService.ResolveCustomer"
    status, _, raw = _request(server, "POST", "/", body, headers)
    return status, json.loads(raw)


class _FormCollector(HTMLParser):
    """Collects each <form> with its attributes, named inputs and button labels."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self._in_button = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form":
            self.forms.append({"attrs": attributes, "inputs": {}, "buttons": []})
        elif tag == "input" and self.forms:
            self.forms[-1]["inputs"][attributes["name"]] = attributes.get("value")
        elif tag == "button" and self.forms:
            self._in_button = True
            self.forms[-1]["buttons"].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "button":
            self._in_button = False

    def handle_data(self, data: str) -> None:
        if self._in_button:
            self.forms[-1]["buttons"][-1] += data


def _forms_on(page: str) -> dict[str, dict[str, Any]]:
    collector = _FormCollector()
    collector.feed(page)
    return {form["attrs"]["data-customer"]: form for form in collector.forms}


def _page(server: RunningServer, path: str = "/marketplace") -> tuple[int, Any, str]:
    status, headers, body = _request(server, "GET", path)
    return status, headers, body.decode("utf-8")


# -- ResolveCustomer answers ---------------------------------------------------------------------


def test_new_style_customer_resolves_to_account_license_and_agreement(
    stand_in: MarketplaceStandIn, metering: MarketplaceMeteringClient
) -> None:
    # Given a token issued for the new-style customer
    token = stand_in.issue_token("new-style")

    # When the real boto3 client resolves it
    answer = metering.resolve_customer(RegistrationToken=token)

    # Then boto3 parses every field of the current model, with an empty legacy identifier
    assert answer["CustomerIdentifier"] == ""
    assert answer["CustomerAWSAccountId"] == "111122223333"
    assert answer["ProductCode"] == PRODUCT_CODE
    assert answer["LicenseArn"] == (
        "arn:aws:license-manager::111122223333:license:l-0123456789abcdef0123456789abcdef"
    )
    assert answer["Metadata"]["AgreementId"].startswith("agmt-")
    assert answer["ResponseMetadata"]["RequestId"]


def test_second_license_shares_the_account_but_not_the_license(
    stand_in: MarketplaceStandIn, metering: MarketplaceMeteringClient
) -> None:
    first = metering.resolve_customer(RegistrationToken=stand_in.issue_token("new-style"))
    second = metering.resolve_customer(RegistrationToken=stand_in.issue_token("second-license"))

    assert first["CustomerAWSAccountId"] == second["CustomerAWSAccountId"]
    assert first["LicenseArn"] != second["LicenseArn"]
    assert first["Metadata"]["AgreementId"] != second["Metadata"]["AgreementId"]


def test_legacy_customer_resolves_to_identifier_without_license(
    stand_in: MarketplaceStandIn, metering: MarketplaceMeteringClient
) -> None:
    answer = metering.resolve_customer(RegistrationToken=stand_in.issue_token("legacy"))

    assert answer["CustomerIdentifier"] == "Ab1Cd2Ef3Gh"
    assert answer["CustomerAWSAccountId"] == "444455556666"
    assert answer["ProductCode"] == PRODUCT_CODE
    assert "LicenseArn" not in answer
    assert "Metadata" not in answer


def test_other_product_customer_reports_the_other_product_code(
    stand_in: MarketplaceStandIn, metering: MarketplaceMeteringClient
) -> None:
    answer = metering.resolve_customer(RegistrationToken=stand_in.issue_token("other-product"))

    assert answer["ProductCode"] == "prod-otherproduct0"


def test_resolving_the_same_token_again_gives_the_same_answer(
    stand_in: MarketplaceStandIn, metering: MarketplaceMeteringClient
) -> None:
    token = stand_in.issue_token("new-style")

    first = metering.resolve_customer(RegistrationToken=token)
    again = metering.resolve_customer(RegistrationToken=token)

    assert first["LicenseArn"] == again["LicenseArn"]


def test_tokens_are_fresh_and_contain_plus_slash_and_equals(
    stand_in: MarketplaceStandIn,
) -> None:
    tokens = [stand_in.issue_token("new-style") for _ in range(50)]

    assert len(set(tokens)) == len(tokens)
    for token in tokens:
        assert "+" in token
        assert "/" in token
        assert token.endswith("=")


def test_issuing_for_an_unknown_customer_raises(stand_in: MarketplaceStandIn) -> None:
    with pytest.raises(KeyError):
        stand_in.issue_token("nobody")


def test_generated_customers_are_distinct_new_style_buyers() -> None:
    # Given a stand-in that also knows a crowd of generated buyers (as the load run uses)
    crowd = MarketplaceStandIn(default_customers(PRODUCT_CODE))
    for number in (0, 1, 499):
        crowd.add_customer(generated_customer(PRODUCT_CODE, number))

    # When each one's token is resolved
    answers = [crowd.resolve(crowd.issue_token(f"generated-{n}")) for n in (0, 1, 499)]

    # Then each is its own new-style customer of the product: account, license and agreement
    assert [status for status, _ in answers] == [200, 200, 200]
    bodies = [body for _, body in answers]
    assert all(body["CustomerIdentifier"] == "" for body in bodies)
    assert all(body["ProductCode"] == PRODUCT_CODE for body in bodies)
    for field in ("CustomerAWSAccountId", "LicenseArn"):
        assert len({body[field] for body in bodies}) == 3
    assert len({body["Metadata"]["AgreementId"] for body in bodies}) == 3
    assert all(len(body["CustomerAWSAccountId"]) == 12 for body in bodies)
    assert all(body["CustomerAWSAccountId"] in body["LicenseArn"] for body in bodies)


def test_adding_a_customer_whose_name_is_taken_raises() -> None:
    crowd = MarketplaceStandIn(default_customers(PRODUCT_CODE))
    crowd.add_customer(generated_customer(PRODUCT_CODE, 7))

    with pytest.raises(ValueError, match="duplicate"):
        crowd.add_customer(generated_customer(PRODUCT_CODE, 7))
    with pytest.raises(ValueError, match="duplicate"):
        crowd.add_customer(default_customers(PRODUCT_CODE)[0])
    with pytest.raises(ValueError, match="number"):
        generated_customer(PRODUCT_CODE, -1)


# -- errors --------------------------------------------------------------------------------------


def test_unknown_token_is_invalid(metering: MarketplaceMeteringClient) -> None:
    assert _error_of(metering, "bm90LWEtdG9rZW4+/==") == ("InvalidTokenException", 400)


def test_expired_token(stand_in: MarketplaceStandIn, metering: MarketplaceMeteringClient) -> None:
    # Given a token and an expiry of zero seconds
    token = stand_in.issue_token("new-style")
    stand_in.set_expire_after(0)

    # When it is resolved, Then it has expired
    assert _error_of(metering, token) == ("ExpiredTokenException", 400)

    # And with the default expiry back, the same token resolves again
    stand_in.set_expire_after(14400)
    assert metering.resolve_customer(RegistrationToken=token)


def test_throttle_next_two_then_success(
    stand_in: MarketplaceStandIn, metering: MarketplaceMeteringClient
) -> None:
    # Given two throttled calls queued up
    token = stand_in.issue_token("new-style")
    stand_in.throttle_next(2)

    # When the token is resolved three times
    first = _error_of(metering, token)
    second = _error_of(metering, token)
    third = metering.resolve_customer(RegistrationToken=token)

    # Then the first two are throttled, the third succeeds, and all three were counted
    assert first == ("ThrottlingException", 400)
    assert second == ("ThrottlingException", 400)
    assert third["CustomerAWSAccountId"] == "111122223333"
    assert stand_in.resolve_calls_for(token) == 3


def test_internal_error_is_a_500(
    stand_in: MarketplaceStandIn, metering: MarketplaceMeteringClient
) -> None:
    token = stand_in.issue_token("new-style")
    stand_in.internal_error_next(1)

    assert _error_of(metering, token) == ("InternalServiceErrorException", 500)
    assert metering.resolve_customer(RegistrationToken=token)


def test_disabled_api(stand_in: MarketplaceStandIn, metering: MarketplaceMeteringClient) -> None:
    token = stand_in.issue_token("new-style")
    stand_in.set_disabled(True)

    assert _error_of(metering, token) == ("DisabledApiException", 400)
    assert _error_of(metering, token) == ("DisabledApiException", 400)

    stand_in.set_disabled(False)
    assert metering.resolve_customer(RegistrationToken=token)


def test_botocore_default_retries_recover_from_throttling(
    stand_in: MarketplaceStandIn, server: RunningServer
) -> None:
    # Given a client with botocore's standard retries and two throttled answers queued
    client = _metering_client(server.url, {"mode": "standard", "max_attempts": 3})
    token = stand_in.issue_token("new-style")
    stand_in.throttle_next(2)

    # When the token is resolved once by the caller
    answer = client.resolve_customer(RegistrationToken=token)

    # Then botocore treated ThrottlingException as retryable and succeeded on the third attempt
    assert answer["CustomerAWSAccountId"] == "111122223333"
    assert answer["ResponseMetadata"]["RetryAttempts"] == 2
    assert stand_in.resolve_calls_for(token) == 3


def test_seeded_throttle_rate_is_reproducible(stand_in: MarketplaceStandIn) -> None:
    token = stand_in.issue_token("new-style")

    def pattern() -> list[int]:
        return [stand_in.resolve(token)[0] for _ in range(40)]

    stand_in.set_throttle_rate(0.5, seed=7)
    first = pattern()
    stand_in.set_throttle_rate(0.5, seed=7)
    second = pattern()
    stand_in.set_throttle_rate(1.0)
    always = pattern()
    stand_in.set_throttle_rate(0.0)
    never = pattern()

    assert first == second
    assert set(first) == {200, 400}
    assert set(always) == {400}
    assert set(never) == {200}


def test_answers_are_counted_by_outcome_until_reset(stand_in: MarketplaceStandIn) -> None:
    token = stand_in.issue_token("new-style")
    stand_in.set_throttle_rate(0.5, seed=7)
    statuses = [stand_in.resolve(token)[0] for _ in range(40)]
    stand_in.set_throttle_rate(0.0)
    stand_in.resolve("bm90LWEtdG9rZW4+/==")

    assert stand_in.resolve_answers == {
        "ok": statuses.count(200),
        "ThrottlingException": statuses.count(400),
        "InvalidTokenException": 1,
    }
    assert stand_in.state()["resolve_answers"] == stand_in.resolve_answers
    stand_in.reset()
    assert stand_in.resolve_answers == {}


def test_latency_delays_the_answer(
    stand_in: MarketplaceStandIn, metering: MarketplaceMeteringClient
) -> None:
    token = stand_in.issue_token("new-style")
    stand_in.set_latency(0.2)

    started = time.monotonic()
    metering.resolve_customer(RegistrationToken=token)

    assert time.monotonic() - started >= 0.2


# -- raw protocol --------------------------------------------------------------------------------


def test_answers_carry_amz_json_content_type_and_request_id(
    stand_in: MarketplaceStandIn, server: RunningServer
) -> None:
    token = stand_in.issue_token("new-style")
    body = json.dumps({"RegistrationToken": token}).encode()
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "AWSMPMeteringService.ResolveCustomer",
    }

    status, response_headers, _ = _request(server, "POST", "/", body, headers)

    assert status == 200
    assert response_headers["Content-Type"] == "application/x-amz-json-1.1"
    assert response_headers["x-amzn-RequestId"]


def test_unknown_operation(server: RunningServer) -> None:
    status, body = _resolve_raw(server, b"{}", target="AWSMPMeteringService.MeterUsage")

    assert status == 400
    assert body["__type"] == "UnknownOperationException"


@pytest.mark.parametrize(
    "body",
    [b"{}", b'{"RegistrationToken": ""}', b'{"RegistrationToken": "   "}', b'{"Other": 1}'],
    ids=["missing", "empty", "blank", "other-field"],
)
def test_missing_or_blank_token_is_invalid(server: RunningServer, body: bytes) -> None:
    assert _resolve_raw(server, body) == (
        400,
        {"__type": "InvalidTokenException", "message": "Registration token is invalid."},
    )


def test_bad_json_on_resolve(server: RunningServer) -> None:
    status, body = _resolve_raw(server, b"{not json")

    assert status == 400
    assert body["__type"] == "SerializationException"


def test_per_token_counts(
    stand_in: MarketplaceStandIn, metering: MarketplaceMeteringClient
) -> None:
    # Given two tokens
    first = stand_in.issue_token("new-style")
    second = stand_in.issue_token("legacy")

    # When the first is resolved twice and the second once
    metering.resolve_customer(RegistrationToken=first)
    metering.resolve_customer(RegistrationToken=first)
    metering.resolve_customer(RegistrationToken=second)

    # Then each is counted on its own, the total adds up, and the state holds only digests
    assert stand_in.resolve_calls_for(first) == 2
    assert stand_in.resolve_calls_for(second) == 1
    assert stand_in.resolve_calls_for("never-seen") == 0
    assert stand_in.resolve_calls == 3
    state_text = json.dumps(stand_in.state())
    assert first not in state_text
    assert second not in state_text
    assert sorted(stand_in.state()["resolve_calls_by_token_sha256"].values()) == [1, 2]


def test_a_burst_of_concurrent_clients_is_served(
    stand_in: MarketplaceStandIn, server: RunningServer
) -> None:
    # Given 32 clients that connect at the same instant
    token = stand_in.issue_token("new-style")
    body = json.dumps({"RegistrationToken": token}).encode()
    barrier = threading.Barrier(32)
    statuses: list[int] = []
    errors: list[BaseException] = []

    def call() -> None:
        barrier.wait()
        try:
            statuses.append(_resolve_raw(server, body)[0])
        except OSError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # Then nobody is reset by a short listen backlog
    assert errors == []
    assert statuses == [200] * 32
    assert stand_in.resolve_calls_for(token) == 32


def test_calls_over_a_kept_alive_connection_do_not_stall(
    stand_in: MarketplaceStandIn, server: RunningServer
) -> None:
    # Given one HTTP/1.1 connection reused for every call
    token = stand_in.issue_token("new-style")
    body = json.dumps({"RegistrationToken": token}).encode()
    headers = {"X-Amz-Target": "AWSMPMeteringService.ResolveCustomer"}
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    durations = []
    try:
        # When 20 calls are timed
        for _ in range(20):
            started = time.perf_counter()
            connection.request("POST", "/", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            durations.append(time.perf_counter() - started)
            assert response.status == 200
    finally:
        connection.close()

    # Then none waits for Nagle's algorithm against delayed ACKs (about 40 ms each)
    assert statistics.median(durations) < 0.02


def test_tokens_never_reach_the_server_log(
    stand_in: MarketplaceStandIn, server: RunningServer, capfd: pytest.CaptureFixture[str]
) -> None:
    _, issued = _admin(server, "/_admin/tokens", {"customer": "new-style"})
    _resolve_raw(server, json.dumps({"RegistrationToken": issued["token"]}).encode())
    _page(server)

    captured = capfd.readouterr()
    assert issued["token"] not in captured.err
    assert issued["token"] not in captured.out
    assert "POST" not in captured.err


# -- admin API -----------------------------------------------------------------------------------


def test_admin_issues_tokens_the_api_resolves(
    server: RunningServer, metering: MarketplaceMeteringClient
) -> None:
    # Given a token issued by another process through the admin API
    status, issued = _admin(server, "/_admin/tokens", {"customer": "legacy"})

    # When it is resolved
    answer = metering.resolve_customer(RegistrationToken=issued["token"])

    # Then it belongs to that customer
    assert status == 200
    assert answer["CustomerIdentifier"] == "Ab1Cd2Ef3Gh"


def test_admin_refuses_unknown_customers_and_bad_bodies(server: RunningServer) -> None:
    assert _admin(server, "/_admin/tokens", {"customer": "nobody"})[0] == 404
    assert _admin(server, "/_admin/tokens", {})[0] == 400
    status, _, raw = _request(server, "POST", "/_admin/tokens", b"{oops")
    assert status == 400
    assert "error" in json.loads(raw)
    status, _, raw = _request(server, "POST", "/_admin/faults", b"[1, 2]")
    assert status == 400
    assert _admin(server, "/_admin/nothing", {})[0] == 404


@pytest.mark.parametrize(
    "faults",
    [
        {"throttle_next": -1},
        {"throttle_next": True},
        {"disabled": "yes"},
        {"throttle_rate": 1.5},
        {"latency_seconds": "slow"},
        {"seed": "x"},
        {"no_such_fault": 1},
    ],
)
def test_admin_refuses_bad_fault_settings(
    stand_in: MarketplaceStandIn, server: RunningServer, faults: dict[str, Any]
) -> None:
    before = stand_in.state()["faults"]

    status, body = _admin(server, "/_admin/faults", {"internal_error_next": 3, **faults})

    assert status == 400
    assert body["error"]
    assert stand_in.state()["faults"] == before  # nothing half-applied


def test_admin_faults_take_effect(
    stand_in: MarketplaceStandIn, server: RunningServer, metering: MarketplaceMeteringClient
) -> None:
    # Given faults set over HTTP
    token = stand_in.issue_token("new-style")
    status, state = _admin(
        server,
        "/_admin/faults",
        {
            "throttle_next": 1,
            "internal_error_next": 1,
            "expire_after_seconds": 3600,
            "throttle_rate": 0.25,
            "seed": 3,
            "latency_seconds": 0.01,
        },
    )

    # Then the state reports them and the API honours them in order
    assert status == 200
    assert state["faults"] == {
        "throttle_next": 1,
        "internal_error_next": 1,
        "disabled": False,
        "expire_after_seconds": 3600,
        "throttle_rate": 0.25,
        "seed": 3,
        "latency_seconds": 0.01,
    }
    assert _error_of(metering, token) == ("ThrottlingException", 400)
    assert _error_of(metering, token) == ("InternalServiceErrorException", 500)

    _admin(server, "/_admin/faults", {"disabled": True})
    assert _error_of(metering, token) == ("DisabledApiException", 400)


def test_admin_reset_forgets_tokens_faults_and_counts(
    stand_in: MarketplaceStandIn, server: RunningServer, metering: MarketplaceMeteringClient
) -> None:
    # Given an issued, resolved token and a pending fault
    _, issued = _admin(server, "/_admin/tokens", {"customer": "new-style"})
    metering.resolve_customer(RegistrationToken=issued["token"])
    stand_in.throttle_next(5)

    # When the stand-in is reset over HTTP
    status, state = _admin(server, "/_admin/reset")

    # Then counts and faults are back to defaults and the token is no longer known
    assert status == 200
    assert state["resolve_calls"] == 0
    assert state["tokens_issued"] == 0
    assert state["faults"]["throttle_next"] == 0
    assert _error_of(metering, issued["token"]) == ("InvalidTokenException", 400)


def test_admin_state_shows_counts_and_customers_but_no_token(
    server: RunningServer, metering: MarketplaceMeteringClient
) -> None:
    _, issued = _admin(server, "/_admin/tokens", {"customer": "free-trial"})
    metering.resolve_customer(RegistrationToken=issued["token"])

    status, _, raw = _request(server, "GET", "/_admin/state")
    state = json.loads(raw)

    assert status == 200
    assert issued["token"] not in raw.decode()
    assert state["resolve_calls"] == 1
    assert state["tokens_issued"] == 1
    assert [c["name"] for c in state["customers"]] == [
        "new-style",
        "second-license",
        "legacy",
        "free-trial",
        "other-product",
    ]


# -- the page that plays AWS Marketplace ---------------------------------------------------------


def test_page_has_one_form_per_customer_posting_to_the_fulfillment_url(
    stand_in: MarketplaceStandIn, server: RunningServer, metering: MarketplaceMeteringClient
) -> None:
    # When the buyer page is rendered
    status, headers, page = _page(server)
    forms = _forms_on(page)

    # Then there is one form per customer, each posting a live token to the fulfillment URL
    assert status == 200
    assert "AWS Marketplace (local stand-in)" in page
    assert list(forms) == [customer.name for customer in stand_in.customers]
    for customer in stand_in.customers:
        form = forms[customer.name]
        assert form["attrs"]["method"] == "post"
        assert form["attrs"]["action"] == FULFILLMENT_URL
        assert form["buttons"] == ["Set up your account"]
        assert customer.label in page
        assert customer.customer_aws_account_id in page
        answer = metering.resolve_customer(
            RegistrationToken=form["inputs"]["x-amzn-marketplace-token"]
        )
        assert answer["CustomerAWSAccountId"] == customer.customer_aws_account_id
        assert answer["ProductCode"] == customer.product_code

    # And the page is self-contained and locked down
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Content-Security-Policy"] == (
        "default-src 'none'; style-src 'unsafe-inline'; form-action *"
    )
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-store"
    assert "<script" not in page
    assert "src=" not in page


def test_page_shows_calls_and_faults(stand_in: MarketplaceStandIn, server: RunningServer) -> None:
    stand_in.set_disabled(True)
    stand_in.resolve("whatever")

    _, _, page = _page(server)

    assert "ResolveCustomer calls</dt><dd>1</dd>" in page
    assert "Disabled</dt><dd>true</dd>" in page


def test_root_without_target_serves_the_page(server: RunningServer) -> None:
    status, _, page = _page(server, "/")

    assert status == 200
    assert len(_forms_on(page)) == 5


def test_each_render_issues_fresh_tokens(server: RunningServer) -> None:
    first = _forms_on(_page(server)[2])
    second = _forms_on(_page(server)[2])

    for name in first:
        token = first[name]["inputs"]["x-amzn-marketplace-token"]
        assert token != second[name]["inputs"]["x-amzn-marketplace-token"]
        assert "+" in token
        assert "/" in token
        assert token.endswith("=")


def test_only_the_free_trial_form_carries_the_offer_type(server: RunningServer) -> None:
    forms = _forms_on(_page(server)[2])

    assert forms["free-trial"]["inputs"]["x-amzn-marketplace-offer-type"] == "free-trial"
    for name, form in forms.items():
        if name != "free-trial":
            assert "x-amzn-marketplace-offer-type" not in form["inputs"]


def test_page_escapes_labels_and_urls() -> None:
    # Given a customer whose label and a fulfillment URL that carry markup
    hostile = TestCustomer(
        name="hostile",
        label="<script>alert(1)</script> & co",
        product_code=PRODUCT_CODE,
        customer_aws_account_id="123456789012",
        license_arn=None,
        customer_identifier='"><b>x',
        agreement_id=None,
    )
    url = 'http://127.0.0.1:8000/?a=1&b="><script>'

    # When the page is rendered over HTTP
    with start_server(MarketplaceStandIn([hostile]), fulfillment_url=url) as running:
        _, _, page = _page(running)

    # Then the markup shows as text and the form still posts to the exact URL
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in page
    assert "&quot;&gt;&lt;b&gt;x" in page
    assert _forms_on(page)["hostile"]["attrs"]["action"] == url


# -- standalone ----------------------------------------------------------------------------------


def test_module_runs_standalone() -> None:
    # Given the stand-in started as `python -m local.marketplace` on a free port
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "local.marketplace",
            "--port",
            "0",
            "--product-code",
            "prod-standalone0",
            "--fulfillment-url",
            "http://127.0.0.1:9999/",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        url = banner.split(" on ", 1)[1].split(" ", 1)[0]
        port = urlsplit(url).port
        assert port

        # When its admin API and page are used
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/_admin/state")
        state = json.loads(connection.getresponse().read())
        connection.request("GET", "/marketplace")
        page = connection.getresponse().read().decode()
        connection.close()

        # Then it serves the default customers for the given product and fulfillment URL
        assert state["customers"][0]["product_code"] == "prod-standalone0"
        assert 'action="http://127.0.0.1:9999/"' in page
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
        if process.stdout is not None:
            process.stdout.close()


# -- GetEntitlements (issue 5) ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def entitlements(server: RunningServer) -> Any:
    # The endpoint variable boto3 reads for service id "Marketplace Entitlement Service"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL_MARKETPLACE_ENTITLEMENT_SERVICE", server.url)
        return boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        ).client("marketplace-entitlement", config=Config(retries={"total_max_attempts": 1}))


def test_entitlements_endpoint_comes_from_the_standard_variable(
    entitlements: Any, server: RunningServer
) -> None:
    assert entitlements.meta.endpoint_url == server.url


def test_get_entitlements_by_license_answers_the_customers_dimension(entitlements: Any) -> None:
    license_arn = "arn:aws:license-manager::111122223333:license:l-0123456789abcdef0123456789abcdef"

    answer = entitlements.get_entitlements(
        ProductCode=PRODUCT_CODE, Filter={"LICENSE_ARN": [license_arn]}
    )

    (entitlement,) = answer["Entitlements"]
    assert entitlement["Dimension"] == "users"
    assert entitlement["Value"] == {"IntegerValue": 10}
    assert entitlement["CustomerAWSAccountId"] == "111122223333"
    assert entitlement["LicenseArn"] == license_arn
    assert "NextToken" not in answer


def test_get_entitlements_for_a_customer_without_any_is_an_empty_list(entitlements: Any) -> None:
    answer = entitlements.get_entitlements(
        ProductCode=PRODUCT_CODE, Filter={"CUSTOMER_AWS_ACCOUNT_ID": ["777788889999"]}
    )

    assert answer["Entitlements"] == []


def test_get_entitlements_pages_with_next_token(entitlements: Any) -> None:
    # The account holds two licenses: one entitlement each, one per page
    pages = list(
        entitlements.get_paginator("get_entitlements").paginate(
            ProductCode=PRODUCT_CODE,
            Filter={"CUSTOMER_AWS_ACCOUNT_ID": ["111122223333"]},
            PaginationConfig={"PageSize": 1},
        )
    )

    assert [len(page["Entitlements"]) for page in pages] == [1, 1]
    assert "NextToken" in pages[0]
    assert {p["Entitlements"][0]["LicenseArn"] for p in pages} == {
        "arn:aws:license-manager::111122223333:license:l-0123456789abcdef0123456789abcdef",
        "arn:aws:license-manager::111122223333:license:l-fedcba9876543210fedcba9876543210",
    }


def test_get_entitlements_by_legacy_identifier_and_other_products(entitlements: Any) -> None:
    legacy = entitlements.get_entitlements(
        ProductCode=PRODUCT_CODE, Filter={"CUSTOMER_IDENTIFIER": ["Ab1Cd2Ef3Gh"]}
    )
    other = entitlements.get_entitlements(ProductCode="prod-nobodyhere0")

    assert [e["CustomerIdentifier"] for e in legacy["Entitlements"]] == ["Ab1Cd2Ef3Gh"]
    assert other["Entitlements"] == []


def test_get_entitlements_throttling_is_a_client_error(
    entitlements: Any, stand_in: MarketplaceStandIn
) -> None:
    stand_in.throttle_next(1)

    with pytest.raises(ClientError) as caught:
        entitlements.get_entitlements(ProductCode=PRODUCT_CODE)

    assert caught.value.response["Error"]["Code"] == "ThrottlingException"


# -- lifecycle notifications (issue 5) -------------------------------------------------------------


def _emitting(stand_in: MarketplaceStandIn) -> list[str]:
    sent: list[str] = []
    stand_in.connect_lifecycle(sent.append, lambda customer: f"<status of {customer.name}>")
    return sent


def test_subscribe_for_a_new_style_customer_sends_real_shaped_events(
    stand_in: MarketplaceStandIn,
) -> None:
    sent = _emitting(stand_in)

    stand_in.emit("new-style", "subscribe")

    events = [json.loads(body) for body in sent]
    assert [e["detail-type"] for e in events] == [
        "Purchase Agreement Created - Proposer",
        "Purchase Agreement Created - Manufacturer",
        "License Updated - Manufacturer",
    ]
    for event in events:
        assert event["source"] == "aws.agreement-marketplace"
        assert event["region"] == "us-east-1"
        assert event["detail"]["agreement"]["id"] == "agmt-1a2b3c4d5e6f7g8h9i0j1k2l3"
        assert event["detail"]["acceptor"] == {"accountId": "111122223333"}
        assert event["time"].endswith("Z")
    # Agreement events carry no product and no license; license events carry both
    assert "product" not in events[0]["detail"] and "license" not in events[0]["detail"]
    assert events[2]["detail"]["product"]["code"] == PRODUCT_CODE
    assert events[2]["detail"]["license"]["arn"].endswith("0123456789abcdef0123456789abcdef")


def test_legacy_customer_gets_sns_envelopes_with_raw_delivery_off(
    stand_in: MarketplaceStandIn,
) -> None:
    sent = _emitting(stand_in)

    stand_in.emit("legacy", "subscribe")
    stand_in.emit("legacy", "unsubscribe")
    stand_in.emit("legacy", "license-updated")
    stand_in.emit("legacy", "subscribe-fail")

    envelopes = [json.loads(body) for body in sent]
    messages = [json.loads(e["Message"]) for e in envelopes]
    assert [m["action"] for m in messages] == [
        "subscribe-success",
        "unsubscribe-pending",
        "unsubscribe-success",
        "entitlement-updated",
        "subscribe-fail",
    ]
    for envelope, message in zip(envelopes, messages, strict=True):
        assert envelope["Type"] == "Notification"
        assert envelope["TopicArn"].startswith("arn:aws:sns:us-east-1:287250355862:aws-mp-")
        assert envelope["TopicArn"].endswith(f"-notification-{PRODUCT_CODE}")
        assert message["customer-identifier"] == "Ab1Cd2Ef3Gh"
        assert message["product-code"] == PRODUCT_CODE
    assert "entitlement-notification" in envelopes[3]["TopicArn"]
    assert messages[0]["isFreeTrialTermPresent"] == "false"
    assert messages[0]["offer-identifier"]


def test_duplicate_repeats_and_out_of_order_predates_the_last_notification(
    stand_in: MarketplaceStandIn,
) -> None:
    sent = _emitting(stand_in)
    stand_in.emit("new-style", "subscribe")
    stand_in.emit("new-style", "unsubscribe")
    unsubscribed_at = json.loads(sent[-1])["time"]

    stand_in.emit("new-style", "duplicate")
    stand_in.emit("new-style", "out-of-order")

    assert sent[5:7] == sent[3:5]  # the unsubscribe, byte for byte (a redelivery)
    late = [json.loads(body) for body in sent[7:]]
    assert late[0]["detail-type"] == "Purchase Agreement Created - Proposer"
    assert all(event["time"] < unsubscribed_at for event in late)


def _post_form(url: str, path: str, body: str) -> tuple[int, dict[str, str]]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request(
            "POST", path, body, {"Content-Type": "application/x-www-form-urlencoded"}
        )
        response = connection.getresponse()
        response.read()
        return response.status, dict(response.getheaders())
    finally:
        connection.close()


def test_page_buttons_emit_then_redirect_back_and_show_status(
    server: RunningServer, stand_in: MarketplaceStandIn
) -> None:
    sent = _emitting(stand_in)

    status, headers = _post_form(
        server.url, "/marketplace/lifecycle", "customer=new-style&action=license-updated"
    )
    page = _get(server.url, "/marketplace")

    assert (status, headers["Location"]) == (303, "/marketplace")
    assert [json.loads(b)["detail-type"] for b in sent] == ["License Updated - Manufacturer"]
    assert "&lt;status of new-style&gt;" in page
    assert 'name="action" value="deprovisioned"' in page
    bad, _ = _post_form(server.url, "/marketplace/lifecycle", "customer=nobody&action=subscribe")
    assert bad == 400


def _get(url: str, path: str) -> str:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request("GET", path)
        return connection.getresponse().read().decode()
    finally:
        connection.close()
