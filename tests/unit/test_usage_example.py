"""docs/examples/post_usage.py: the signed POST it builds, offline (no socket)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

import pytest
from botocore.credentials import Credentials

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "post_usage.py"
ENDPOINT = "https://abc123defg.execute-api.us-east-1.amazonaws.com/prod/usage"
CREDENTIALS = Credentials("AKIAZZZZEXAMPLEKEYID", "example-secret-key", "example-session-token")
REPORT = {
    "usageId": "u-1",
    "licenseArn": "arn:aws:license-manager::1:license:l-1",
    "dimension": "requests",
    "quantity": 1,
    "timestamp": "2026-12-03T12:00:00Z",
}


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("post_usage", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _signature(request: object) -> str:
    match = re.search(r"Signature=([0-9a-f]{64})", request.headers["Authorization"])  # type: ignore[attr-defined]
    assert match
    return match.group(1)


def test_the_batch_is_posted_as_json_and_the_body_is_signed(example: ModuleType) -> None:
    request = example.usage_request(ENDPOINT, [REPORT], "us-east-1", CREDENTIALS)
    other = example.usage_request(ENDPOINT, [{**REPORT, "quantity": 2}], "us-east-1", CREDENTIALS)

    assert request.method == "POST" and request.url == ENDPOINT
    assert json.loads(request.data) == {"reports": [REPORT]}
    assert "/us-east-1/execute-api/aws4_request" in request.headers["Authorization"]
    # A changed quantity is another signature: the body cannot be altered on the way
    assert _signature(request) != _signature(other)


@pytest.mark.parametrize(
    ("endpoint", "reports"),
    [
        ("http://abc123defg.execute-api.us-east-1.amazonaws.com/prod/usage", [REPORT]),
        ("https://abc123defg.execute-api.us-east-1.amazonaws.com/prod/registrations", [REPORT]),
        (ENDPOINT, []),
        (ENDPOINT, [REPORT] * 101),
    ],
)
def test_a_wrong_endpoint_or_batch_size_is_refused_before_signing(
    example: ModuleType, endpoint: str, reports: list[dict[str, object]]
) -> None:
    with pytest.raises(ValueError, match=r"--url|reports per call"):
        example.usage_request(endpoint, reports, "us-east-1", CREDENTIALS)
