"""The local Marketplace stand-in, driven over HTTP by real boto3 clients and a raw client: the
protocol the function and the tests rely on, its faults, its page and its notifications."""

from __future__ import annotations

import http.client
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from local.marketplace import (
    MarketplaceStandIn,
    RunningServer,
    TestCustomer,
    default_customers,
    start_server,
)

PRODUCT_CODE = "prod-standintest0"
FULFILLMENT_URL = "http://127.0.0.1:8000/"
REPO_ROOT = Path(__file__).resolve().parents[2]
LICENSE = "arn:aws:license-manager::111122223333:license:l-0123456789abcdef0123456789abcdef"
SECOND_LICENSE = "arn:aws:license-manager::111122223333:license:l-fedcba9876543210fedcba9876543210"
UNKNOWN_TOKEN = "bm90LWEtdG9rZW4+/=="


@pytest.fixture(scope="module")
def stand_in() -> MarketplaceStandIn:
    return MarketplaceStandIn(default_customers(PRODUCT_CODE))


@pytest.fixture(scope="module")
def server(stand_in: MarketplaceStandIn) -> Iterator[RunningServer]:
    with start_server(stand_in, fulfillment_url=FULFILLMENT_URL) as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh_stand_in(stand_in: MarketplaceStandIn) -> None:
    stand_in.reset()
    stand_in.notification_sink = stand_in.status_reader = None


def _client(service: str, url: str, **retries: Any) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries=retries or {"total_max_attempts": 1}),  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def metering(server: RunningServer) -> Any:
    return _client("meteringmarketplace", server.url)


def _error_of(metering: Any, token: str) -> tuple[str, int]:
    with pytest.raises(ClientError) as caught:
        metering.resolve_customer(RegistrationToken=token)
    response: Any = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def _request(
    server: RunningServer, method: str, path: str, body: bytes = b"", **headers: str
) -> tuple[int, http.client.HTTPMessage, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def _admin(server: RunningServer, path: str, payload: object = None) -> tuple[int, Any]:
    status, _, body = _request(server, "POST", path, json.dumps(payload or {}).encode())
    return status, json.loads(body)


def _resolve_raw(server: RunningServer, body: bytes, target: str = "") -> tuple[int, Any]:
    target = target or "AWSMPMeteringService.ResolveCustomer"
    status, _, raw = _request(server, "POST", "/", body, **{"X-Amz-Target": target})
    return status, json.loads(raw)


# -- ResolveCustomer ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("customer", "expected"),
    [
        (
            "new-style",
            {
                "CustomerIdentifier": "",
                "CustomerAWSAccountId": "111122223333",
                "ProductCode": PRODUCT_CODE,
                "LicenseArn": LICENSE,
                "Metadata": {"AgreementId": "agmt-1a2b3c4d5e6f7g8h9i0j1k2l3"},
            },
        ),
        (
            "legacy",
            {
                "CustomerIdentifier": "Ab1Cd2Ef3Gh",
                "CustomerAWSAccountId": "444455556666",
                "ProductCode": PRODUCT_CODE,
            },
        ),
    ],
)
def test_boto3_resolves_each_kind_of_buyer(
    stand_in: MarketplaceStandIn, metering: Any, customer: str, expected: dict[str, Any]
) -> None:
    answer = metering.resolve_customer(RegistrationToken=stand_in.issue_token(customer))

    assert answer["ResponseMetadata"]["RequestId"]
    answer.pop("ResponseMetadata")
    assert answer == expected


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (lambda s: None, ("InvalidTokenException", 400)),
        (lambda s: s.set_expire_after(0), ("ExpiredTokenException", 400)),
        (lambda s: s.throttle_next(1), ("ThrottlingException", 400)),
        (lambda s: s.internal_error_next(1), ("InternalServiceErrorException", 500)),
        (lambda s: s.set_disabled(True), ("DisabledApiException", 400)),
    ],
    ids=["unknown", "expired", "throttled", "internal", "disabled"],
)
def test_faults_answer_the_real_error_codes_and_statuses(
    stand_in: MarketplaceStandIn,
    metering: Any,
    fault: Callable[[MarketplaceStandIn], None],
    expected: tuple[str, int],
) -> None:
    token = UNKNOWN_TOKEN if expected[0] == "InvalidTokenException" else None
    token = token or stand_in.issue_token("new-style")
    fault(stand_in)

    assert _error_of(metering, token) == expected


def test_botocore_standard_retries_recover_from_throttling(
    stand_in: MarketplaceStandIn, server: RunningServer
) -> None:
    # Given two throttled answers queued up and a client with botocore's standard retries
    client = _client("meteringmarketplace", server.url, mode="standard", max_attempts=3)
    token = stand_in.issue_token("new-style")
    stand_in.throttle_next(2)

    # When the token is resolved once by the caller
    answer = client.resolve_customer(RegistrationToken=token)

    # Then botocore retried ThrottlingException and the third attempt succeeded
    assert answer["ResponseMetadata"]["RetryAttempts"] == 2
    assert stand_in.resolve_calls_for(token) == 3


def test_a_seeded_throttle_rate_repeats_and_answers_are_counted(
    stand_in: MarketplaceStandIn,
) -> None:
    token = stand_in.issue_token("new-style")

    def pattern() -> list[int]:
        return [stand_in.resolve(token)[0] for _ in range(40)]

    stand_in.set_throttle_rate(0.5, seed=7)
    first = pattern()
    stand_in.set_throttle_rate(0.5, seed=7)

    assert pattern() == first
    assert set(first) == {200, 400}
    assert stand_in.resolve_answers == {
        "ok": 2 * first.count(200),
        "ThrottlingException": 2 * first.count(400),
    }
    stand_in.set_throttle_rate(1.0)
    assert set(pattern()) == {400}


def test_latency_delays_every_answer(stand_in: MarketplaceStandIn, metering: Any) -> None:
    token = stand_in.issue_token("new-style")
    stand_in.set_latency(0.2)

    started = time.monotonic()
    metering.resolve_customer(RegistrationToken=token)

    assert time.monotonic() - started >= 0.2


# -- the wire ------------------------------------------------------------------------------------


def test_the_raw_protocol_is_json_1_1_with_modelled_errors(
    stand_in: MarketplaceStandIn, server: RunningServer
) -> None:
    token = stand_in.issue_token("new-style")
    body = json.dumps({"RegistrationToken": token}).encode()

    status, headers, _ = _request(
        server, "POST", "/", body, **{"X-Amz-Target": "AWSMPMeteringService.ResolveCustomer"}
    )

    assert status == 200
    assert headers["Content-Type"] == "application/x-amz-json-1.1"
    assert headers["x-amzn-RequestId"]
    assert _resolve_raw(server, b"{}", "AWSMPMeteringService.MeterUsage")[1]["__type"] == (
        "UnknownOperationException"
    )
    assert _resolve_raw(server, b"{not json")[1]["__type"] == "SerializationException"
    invalid = (
        400,
        {"__type": "InvalidTokenException", "message": "Registration token is invalid."},
    )
    for blank in (b"{}", b'{"RegistrationToken": "   "}', b'{"Other": 1}'):
        assert _resolve_raw(server, blank) == invalid


def test_a_burst_of_clients_is_served_and_kept_alive_calls_do_not_stall(
    stand_in: MarketplaceStandIn, server: RunningServer
) -> None:
    # Given 32 clients that connect at the same instant (http.server's backlog is 5)
    token = stand_in.issue_token("new-style")
    body = json.dumps({"RegistrationToken": token}).encode()
    barrier = threading.Barrier(32)
    statuses: list[int] = []

    def call() -> None:
        barrier.wait()
        statuses.append(_resolve_raw(server, body)[0])

    threads = [threading.Thread(target=call) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # Then nobody is reset
    assert statuses == [200] * 32

    # And 20 calls over one HTTP/1.1 connection do not wait for Nagle's algorithm (~40 ms each)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    durations = []
    try:
        for _ in range(20):
            started = time.perf_counter()
            connection.request(
                "POST", "/", body, {"X-Amz-Target": "AWSMPMeteringService.ResolveCustomer"}
            )
            connection.getresponse().read()
            durations.append(time.perf_counter() - started)
    finally:
        connection.close()
    assert statistics.median(durations) < 0.02


def test_tokens_never_reach_the_server_log(
    server: RunningServer, capfd: pytest.CaptureFixture[str]
) -> None:
    _, issued = _admin(server, "/_admin/tokens", {"customer": "new-style"})
    _resolve_raw(server, json.dumps({"RegistrationToken": issued["token"]}).encode())
    _request(server, "GET", "/marketplace")

    captured = capfd.readouterr()
    assert issued["token"] not in captured.err + captured.out
    assert "POST" not in captured.err


# -- the admin API -------------------------------------------------------------------------------


def test_other_processes_issue_tokens_set_faults_and_reset_over_http(
    server: RunningServer, metering: Any
) -> None:
    # Given a token issued through the admin API and faults set there
    _, issued = _admin(server, "/_admin/tokens", {"customer": "legacy"})
    status, state = _admin(server, "/_admin/faults", {"throttle_next": 1, "seed": 3})

    # Then the API honours them, and the state shows them without the token
    assert status == 200
    assert (state["faults"]["throttle_next"], state["faults"]["seed"]) == (1, 3)
    assert _error_of(metering, issued["token"]) == ("ThrottlingException", 400)
    assert metering.resolve_customer(RegistrationToken=issued["token"])["CustomerIdentifier"]
    status, _, raw = _request(server, "GET", "/_admin/state")
    assert json.loads(raw)["resolve_calls"] == 2
    assert issued["token"] not in raw.decode()

    # When it is reset, Then the token is forgotten and the faults are back to none
    status, state = _admin(server, "/_admin/reset")
    assert (status, state["tokens_issued"], state["faults"]["throttle_next"]) == (200, 0, 0)
    assert _error_of(metering, issued["token"]) == ("InvalidTokenException", 400)


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/_admin/tokens", b'{"customer": "nobody"}', 404),
        ("/_admin/tokens", b"{}", 400),
        ("/_admin/tokens", b"{oops", 400),
        ("/_admin/faults", b"[1, 2]", 400),
        ("/_admin/faults", b'{"internal_error_next": 3, "throttle_next": -1}', 400),
        ("/_admin/faults", b'{"internal_error_next": 3, "throttle_rate": 1.5}', 400),
        ("/_admin/faults", b'{"internal_error_next": 3, "disabled": "yes"}', 400),
        ("/_admin/faults", b'{"internal_error_next": 3, "no_such_fault": 1}', 400),
        ("/_admin/nothing", b"{}", 404),
    ],
)
def test_the_admin_api_refuses_bad_requests_and_changes_nothing(
    stand_in: MarketplaceStandIn, server: RunningServer, path: str, body: bytes, status: int
) -> None:
    before = stand_in.state()

    answered, _, raw = _request(server, "POST", path, body)

    assert (answered, bool(json.loads(raw)["error"])) == (status, True)
    assert stand_in.state() == before


def test_the_module_runs_standalone() -> None:
    # Given the stand-in started as `python -m local.marketplace` on a free port
    process = subprocess.Popen(
        [sys.executable, "-m", "local.marketplace", "--port", "0", "--product-code", "prod-x"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split(" on ", 1)[1].split(" ", 1)[0]
        port = int(url.rsplit(":", 1)[1])

        # When its admin API and page are used
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/_admin/state")
        state = json.loads(connection.getresponse().read())
        connection.request("GET", "/marketplace")
        page = connection.getresponse().read().decode()
        connection.close()

        # Then it serves the default customers for the given product and fulfillment URL
        assert state["customers"][0]["product_code"] == "prod-x"
        assert 'action="http://127.0.0.1:8000/"' in page  # the default fulfillment URL
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
        if process.stdout is not None:
            process.stdout.close()


# -- the page that plays AWS Marketplace ---------------------------------------------------------


class _Forms(HTMLParser):
    """Each <form> by its data-customer: attributes, named inputs, button labels."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.forms: dict[str, dict[str, Any]] = {}
        self._form: dict[str, Any] | None = None
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form":
            self._form = {"attrs": attributes, "inputs": {}, "buttons": 0}
            self.forms.setdefault(str(attributes.get("data-customer")), self._form)
        elif tag == "input" and self._form is not None:
            self._form["inputs"][attributes["name"]] = attributes.get("value")


def test_the_page_posts_a_fresh_token_per_customer_and_is_locked_down(
    stand_in: MarketplaceStandIn, server: RunningServer
) -> None:
    # When the buyer page is rendered twice (at /marketplace and at /)
    status, headers, raw = _request(server, "GET", "/marketplace")
    page = raw.decode()
    forms, again = _Forms(page).forms, _Forms(_request(server, "GET", "/")[2].decode()).forms

    # Then each customer's form posts a token issued just now to the fulfillment URL
    assert status == 200
    assert list(forms) == [customer.name for customer in stand_in.customers]
    for name, form in forms.items():
        assert (form["attrs"]["method"], form["attrs"]["action"]) == ("post", FULFILLMENT_URL)
        token = form["inputs"]["x-amzn-marketplace-token"]
        assert "+" in token and "/" in token and token.endswith("=")
        assert token != again[name]["inputs"]["x-amzn-marketplace-token"]
    assert stand_in.state()["tokens_issued"] == 2 * len(forms)

    # And the page shows the stand-in's state, is self-contained and locked down
    assert "ResolveCustomer calls</dt><dd>0</dd>" in page
    assert headers["Content-Security-Policy"] == (
        "default-src 'none'; style-src 'unsafe-inline'; form-action *"
    )
    assert (headers["X-Content-Type-Options"], headers["Cache-Control"]) == ("nosniff", "no-store")
    assert "<script" not in page and "src=" not in page


def test_the_page_escapes_labels_and_urls() -> None:
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
        page = _request(running, "GET", "/marketplace")[2].decode()

    # Then the markup shows as text and the form still posts to the exact URL
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in page
    assert "&quot;&gt;&lt;b&gt;x" in page
    assert _Forms(page).forms["hostile"]["attrs"]["action"] == url


# -- GetEntitlements -----------------------------------------------------------------------------


def _client_by_variable(service: str, variable: str, url: str) -> Any:
    """A client whose endpoint comes from ``variable`` alone, as the functions' clients do."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(variable, url)
        client = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        ).client(service, config=Config(retries={"total_max_attempts": 1}))
    assert client.meta.endpoint_url == url
    return client


@pytest.fixture(scope="module")
def entitlements(server: RunningServer) -> Any:
    # The endpoint variable boto3 reads for service id "Marketplace Entitlement Service"
    return _client_by_variable(
        "marketplace-entitlement", "AWS_ENDPOINT_URL_MARKETPLACE_ENTITLEMENT_SERVICE", server.url
    )


def test_get_entitlements_filters_pages_and_throttles(
    entitlements: Any, stand_in: MarketplaceStandIn
) -> None:
    def found(product: str = PRODUCT_CODE, **filters: list[str]) -> list[Any]:
        return list(
            entitlements.get_entitlements(ProductCode=product, Filter=filters)["Entitlements"]
        )

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
    assert {p["Entitlements"][0]["LicenseArn"] for p in pages} == {LICENSE, SECOND_LICENSE}
    (by_license,) = found(LICENSE_ARN=[LICENSE])
    assert (by_license["Dimension"], by_license["Value"]) == ("users", {"IntegerValue": 10})
    assert found(CUSTOMER_AWS_ACCOUNT_ID=["777788889999"]) == []  # the free trial: none at all
    assert [e["CustomerIdentifier"] for e in found(CUSTOMER_IDENTIFIER=["Ab1Cd2Ef3Gh"])] == [
        "Ab1Cd2Ef3Gh"
    ]
    assert found("prod-nobodyhere0") == []
    stand_in.throttle_next(1)
    with pytest.raises(ClientError) as caught:
        entitlements.get_entitlements(ProductCode=PRODUCT_CODE)
    assert caught.value.response["Error"]["Code"] == "ThrottlingException"


# -- GetAgreementTerms ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def agreements(server: RunningServer) -> Any:
    # The endpoint variable boto3 reads for service id "Marketplace Agreement"; JSON 1.0
    return _client_by_variable(
        "marketplace-agreement", "AWS_ENDPOINT_URL_MARKETPLACE_AGREEMENT", server.url
    )


def test_get_agreement_terms_names_the_free_trial_pages_and_refuses(
    agreements: Any, stand_in: MarketplaceStandIn
) -> None:
    def term_types(agreement: str) -> list[str]:
        pages = agreements.get_paginator("get_agreement_terms").paginate(
            agreementId=agreement, PaginationConfig={"PageSize": 1}
        )
        return [kind for page in pages for term in page["acceptedTerms"] for kind in term]

    def error(agreement: str = "agmt-1a2b3c4d5e6f7g8h9i0j1k2l3") -> tuple[str, int]:
        with pytest.raises(ClientError) as caught:
            agreements.get_agreement_terms(agreementId=agreement)
        response = caught.value.response
        return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]

    # A trial buyer's agreement has a free-trial term (parsed by botocore's own model),
    # one term per page here; the others have none
    trial = term_types("agmt-f1r2e3e4t5r6i7a8l9o0f1f2e")
    assert trial == ["legalTerm", "configurableUpfrontPricingTerm", "freeTrialPricingTerm"]
    (term,) = [
        t["freeTrialPricingTerm"]
        for t in agreements.get_agreement_terms(agreementId="agmt-f1r2e3e4t5r6i7a8l9o0f1f2e")[
            "acceptedTerms"
        ]
        if "freeTrialPricingTerm" in t
    ]
    assert (term["type"], term["duration"]) == ("FreeTrialPricingTerm", "P30D")
    assert "freeTrialPricingTerm" not in term_types("agmt-1a2b3c4d5e6f7g8h9i0j1k2l3")
    # Refusals with the Agreement API's own codes and statuses
    assert error("agmt-nobodyhasthisone") == ("ResourceNotFoundException", 404)
    stand_in.set_faults(terms_denied_next=1)
    assert error() == ("AccessDeniedException", 403)
    stand_in.throttle_next(1)
    assert error() == ("ThrottlingException", 429)
    assert stand_in.terms_calls == 3 + 1 + 2 + 3  # pages of the trial, one call, pages, refusals


# -- lifecycle notifications ---------------------------------------------------------------------


def _emitting(stand_in: MarketplaceStandIn) -> list[str]:
    sent: list[str] = []
    stand_in.connect_lifecycle(sent.append, lambda customer: f"<status of {customer.name}>")
    return sent


def test_a_legacy_customer_gets_sns_envelopes_with_raw_delivery_off(
    stand_in: MarketplaceStandIn,
) -> None:
    sent = _emitting(stand_in)

    for action in ("subscribe", "unsubscribe", "license-updated", "subscribe-fail"):
        stand_in.emit("legacy", action)

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
        assert (message["customer-identifier"], message["product-code"]) == (
            "Ab1Cd2Ef3Gh",
            PRODUCT_CODE,
        )
    assert "entitlement-notification" in envelopes[3]["TopicArn"]
    assert messages[0]["isFreeTrialTermPresent"] == "false"
    assert messages[0]["offer-identifier"]
