"""Report usage from the seller's backend: a SigV4-signed POST /usage (docs/metering.md).

    python post_usage.py --url '<UsageEndpoint output>' --region us-east-1 reports.json

(or ``--url http://127.0.0.1:8000/usage`` for `make run`'s local stack).
``reports.json`` holds a list of up to 100 reports, e.g.
``[{"usageId": "req-42", "licenseArn": "arn:aws:license-manager::...", "dimension":
"requests", "quantity": 17, "timestamp": "2026-12-03T12:14:05Z"}]`` (``-`` reads stdin).
Credentials come from the standard chain; the caller needs ``execute-api:Invoke`` on the
stack's ``UsageInvokeArn`` output. Prints the JSON answer; exits 0 when every report was
accepted or a duplicate, 1 when any was rejected, 2 otherwise (send the same batch again on
2: nothing is counted twice). Only botocore is needed; it reuses get_registration.send.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from urllib.parse import urlsplit

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

sys.path.insert(0, str(Path(__file__).resolve().parent))
from get_registration import SERVICE, send

MAX_REPORTS = 100
# `make run`'s local stack answers plain HTTP on this machine only.
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def usage_request(
    endpoint: str, reports: list[dict[str, object]], region: str, credentials: Credentials
) -> AWSRequest:
    """The POST of ``reports``, signed with SigV4 for API Gateway (execute-api): the body is
    part of the signature."""
    parts = urlsplit(endpoint)
    local = parts.scheme == "http" and parts.hostname in LOOPBACK
    if not (parts.scheme == "https" or local) or not parts.path.rstrip("/").endswith("/usage"):
        raise ValueError("--url must be the UsageEndpoint output (https://.../usage)")
    if not 1 <= len(reports) <= MAX_REPORTS:
        raise ValueError(f"send 1 to {MAX_REPORTS} reports per call")
    request = AWSRequest(
        method="POST",
        url=endpoint,
        data=json.dumps({"reports": reports}).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    SigV4Auth(credentials, SERVICE, region).add_auth(request)
    return request


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the stack's UsageEndpoint output")
    parser.add_argument("--region", required=True, help="the stack's region, e.g. us-east-1")
    parser.add_argument("reports", help="a JSON file with a list of reports, or - for stdin")
    args = parser.parse_args(argv)

    text = sys.stdin.read() if args.reports == "-" else Path(args.reports).read_text()
    reports = json.loads(text)
    credentials = botocore.session.get_session().get_credentials()
    if credentials is None:
        parser.error("no AWS credentials found (environment, profile or role)")
    try:
        request = usage_request(args.url, reports, args.region, credentials)
    except ValueError as error:
        parser.error(str(error))
    status, body = send(request)
    print(json.dumps(body, indent=2))
    if status != 200:
        return 2
    results = body.get("results")
    statuses = [r.get("status") for r in results] if isinstance(results, list) else []
    return 1 if "rejected" in statuses else 0


if __name__ == "__main__":
    sys.exit(main())
