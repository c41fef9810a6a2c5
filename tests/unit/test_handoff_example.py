"""docs/examples/get_registration.py: the signed request it builds, offline (no socket)."""

from __future__ import annotations

import importlib.util
import io
import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.credentials import Credentials

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "get_registration.py"
ENDPOINT = "https://abc123defg.execute-api.us-east-1.amazonaws.com/prod/registrations/{id}"
REGISTRATION_ID = "Zk3_q-9LmN0pQrStUvWxYz0123456789"
CREDENTIALS = Credentials("AKIAZZZZEXAMPLEKEYID", "example-secret-key", "example-session-token")


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("get_registration", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_request_is_a_sigv4_get_of_the_registration_for_execute_api(example: ModuleType) -> None:
    request = example.signed_request(ENDPOINT, REGISTRATION_ID, "us-east-1", CREDENTIALS)

    assert request.method == "GET"
    url = urlsplit(request.url)
    assert url.netloc == "abc123defg.execute-api.us-east-1.amazonaws.com"
    assert url.path == f"/prod/registrations/{REGISTRATION_ID}"
    assert not url.query
    authorization = request.headers["Authorization"]
    match = re.fullmatch(
        r"AWS4-HMAC-SHA256 Credential=AKIAZZZZEXAMPLEKEYID/(\d{8})/us-east-1/execute-api/"
        r"aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})",
        authorization,
    )
    assert match, authorization
    assert {"host", "x-amz-date", "x-amz-security-token"} <= set(match.group(2).split(";"))
    assert request.headers["X-Amz-Date"].startswith(match.group(1))
    assert request.headers["X-Amz-Security-Token"] == "example-session-token"
    assert "example-secret-key" not in str(dict(request.headers))


def test_region_is_part_of_the_signature_scope(example: ModuleType) -> None:
    request = example.signed_request(ENDPOINT, REGISTRATION_ID, "eu-west-1", CREDENTIALS)

    assert "/eu-west-1/execute-api/aws4_request" in request.headers["Authorization"]


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://abc123defg.execute-api.us-east-1.amazonaws.com/prod/registrations/",
        "http://abc123defg.execute-api.us-east-1.amazonaws.com/prod/registrations/{id}",
    ],
)
def test_endpoint_must_be_the_https_output_with_its_placeholder(
    example: ModuleType, endpoint: str
) -> None:
    with pytest.raises(ValueError, match="--url"):
        example.signed_request(endpoint, REGISTRATION_ID, "us-east-1", CREDENTIALS)


def test_main_sends_the_signed_request_and_prints_the_answer(
    example: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given credentials in the environment and an endpoint answering 200 (no network)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAZZZZEXAMPLEKEYID")
    sent: list[urllib.request.Request] = []
    answer = {"registration": {"id": REGISTRATION_ID}, "customer": {"productCode": "prod-x"}}

    class Response(io.BytesIO):
        status = 200

    def fake_urlopen(request: urllib.request.Request, timeout: float) -> Any:
        sent.append(request)
        return Response(json.dumps(answer).encode())

    monkeypatch.setattr(example.urllib.request, "urlopen", fake_urlopen)

    # When the script runs
    code = example.main(["--url", ENDPOINT, "--region", "us-east-1", REGISTRATION_ID])

    # Then it sent one signed GET to the registration's URL and printed the JSON
    assert code == 0
    (request,) = sent
    assert request.get_method() == "GET"
    assert request.full_url == ENDPOINT.replace("{id}", REGISTRATION_ID)
    assert request.get_header("Authorization", "").startswith("AWS4-HMAC-SHA256 Credential=")
    assert json.loads(capsys.readouterr().out) == answer


def test_example_runs_as_a_script() -> None:
    result = subprocess.run(  # noqa: S603 - our own example, --help only
        [sys.executable, str(EXAMPLE), "--help"], capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stderr
    assert "--url" in result.stdout and "--region" in result.stdout
