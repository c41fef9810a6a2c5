"""Look up a registration from the seller's backend: a SigV4-signed GET /registrations/{id}.

    python get_registration.py --url '<RegistrationsEndpoint output>' --region us-east-1 <id>

Credentials come from the standard chain (environment, profile, instance or task role); the
caller needs ``execute-api:Invoke`` on the stack's ``RegistrationsInvokeArn`` output.
Prints the JSON answer; exits 0 on 200, 1 on 404 (unknown or expired), 2 otherwise.
Only botocore is needed (it comes with boto3).
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from urllib.parse import quote, urlsplit

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

SERVICE = "execute-api"
TIMEOUT_SECONDS = 10


def registration_url(endpoint: str, registration_id: str) -> str:
    """The endpoint output (``.../registrations/{id}``) with the id filled in."""
    if "{id}" not in endpoint:
        raise ValueError("--url must be the RegistrationsEndpoint output, ending in {id}")
    if urlsplit(endpoint).scheme != "https":
        raise ValueError("--url must be an https:// URL")
    return endpoint.replace("{id}", quote(registration_id, safe=""))


def signed_request(
    endpoint: str, registration_id: str, region: str, credentials: Credentials
) -> AWSRequest:
    """The GET for ``registration_id``, signed with SigV4 for API Gateway (execute-api)."""
    request = AWSRequest(
        method="GET",
        url=registration_url(endpoint, registration_id),
        headers={"Accept": "application/json"},
    )
    SigV4Auth(credentials, SERVICE, region).add_auth(request)
    return request


def send(request: AWSRequest) -> tuple[int, dict[str, object]]:
    """Send the signed request exactly as signed, body included; (status, JSON body)."""
    prepared = request.prepare()
    outgoing = urllib.request.Request(  # noqa: S310 - https checked before signing
        prepared.url,
        data=prepared.body,
        headers=dict(prepared.headers.items()),
        method=prepared.method,
    )
    try:
        with urllib.request.urlopen(outgoing, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            return response.status, _json(response.read())
    except urllib.error.HTTPError as error:  # 4xx/5xx carry a JSON message too
        with error:
            return error.code, _json(error.read())


def _json(raw: bytes) -> dict[str, object]:
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return {"message": raw.decode("utf-8", errors="replace")}
    return body if isinstance(body, dict) else {"message": body}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the stack's RegistrationsEndpoint output")
    parser.add_argument("--region", required=True, help="the stack's region, e.g. us-east-1")
    parser.add_argument("registration_id", help="the ?registration= value your page received")
    args = parser.parse_args(argv)

    credentials = botocore.session.get_session().get_credentials()
    if credentials is None:
        parser.error("no AWS credentials found (environment, profile or role)")
    try:
        request = signed_request(args.url, args.registration_id, args.region, credentials)
    except ValueError as error:
        parser.error(str(error))
    status, body = send(request)
    print(json.dumps(body, indent=2))
    return 0 if status == 200 else 1 if status == 404 else 2


if __name__ == "__main__":
    sys.exit(main())
