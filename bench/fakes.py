"""In-process AWS for the benchmark: a fake HTTP layer under real botocore clients.

``FakeAws.install(session)`` registers a ``before-send`` handler that answers each request with
canned bytes shaped like the real service's answer, so botocore still validates, serializes,
signs and parses as in production; only the socket is missing. A ``CallClock`` times every
client call (``provide-client-params`` to ``after-call``) and counts operations and attempts.

Self-contained (standard library + botocore): the cold-start children load this file by path
from an isolated interpreter (the packaged artifact, or Pyodide), never through ``bench``.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from typing import Any

from botocore.awsrequest import AWSResponse

PRODUCT_CODE = "prod-bench0001"
ACCOUNT = "123456789012"
LICENSE_ARN = f"arn:aws:license-manager::{ACCOUNT}:license:l-0123456789abcdef0123456789abcdef"
AGREEMENT_ID = "agmt-0123456789abcdef0123456789"

# ResolveCustomer outcomes: HTTP status and the JSON 1.1 error type, as marketplace-facts.md.
RESOLVE_ERRORS: dict[str, tuple[int, str]] = {
    "invalid": (400, "InvalidTokenException"),
    "expired": (400, "ExpiredTokenException"),
    "throttled": (400, "ThrottlingException"),
    "disabled": (400, "DisabledApiException"),
}
_SET_ASSIGNMENT = re.compile(r"(#?\w+)\s*=\s*(:\w+)")


class _Raw:
    """The raw body botocore reads from an AWSResponse."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


def _key(table: str, key: dict[str, Any]) -> tuple[str, str]:
    return table, json.dumps(key, sort_keys=True)


class FakeAws:
    """Answers DynamoDB, ResolveCustomer, GetEntitlements, PutEvents and SQS in memory.

    ``resolve`` selects ResolveCustomer's answer: "ok", "unknown-product" or a RESOLVE_ERRORS
    key. DynamoDB keeps items per table and honours the conditional puts the function makes
    (the idempotency record, returned with ReturnValuesOnConditionCheckFailure=ALL_OLD as
    DynamoDB does, and attribute_not_exists(pk) on sessions).
    """

    def __init__(
        self,
        *,
        items: Iterable[tuple[str, dict[str, Any]]] = (),
        key_names: tuple[str, ...] = ("pk", "sk", "id"),
    ) -> None:
        self.resolve = "ok"
        self.attempts: Counter[str] = Counter()
        self._items: dict[tuple[str, str], dict[str, Any]] = {}
        self._key_names = key_names
        for table, item in items:
            self._items[_key(table, self._key_of(item))] = item

    def _key_of(self, item: dict[str, Any]) -> dict[str, Any]:
        return {name: item[name] for name in self._key_names if name in item}

    def install(self, session: Any) -> None:
        """Answer every request of clients created from ``session`` from now on."""
        session.events.register("before-send", self.send)

    def send(self, request: Any, **_: Any) -> AWSResponse:
        target = request.headers.get("X-Amz-Target", b"")
        operation = (target.decode() if isinstance(target, bytes) else target).rsplit(".", 1)[-1]
        self.attempts[operation] += 1
        body = json.loads(request.body or b"{}")
        status, answer = getattr(self, "_" + operation, self._empty)(body)
        headers = {
            "x-amzn-requestid": str(uuid.uuid4()),
            "content-type": "application/x-amz-json-1.0",
        }
        return AWSResponse(request.url, status, headers, _Raw(json.dumps(answer).encode()))

    @staticmethod
    def _empty(_: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, {}

    # --- Marketplace ------------------------------------------------------------------------

    def _ResolveCustomer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.resolve in RESOLVE_ERRORS:
            status, error = RESOLVE_ERRORS[self.resolve]
            return status, {"__type": error, "message": f"bench: {error}"}
        product = PRODUCT_CODE if self.resolve == "ok" else "prod-someoneelse"
        return 200, {
            # New-style answers: an empty CustomerIdentifier, the license and the agreement.
            "CustomerIdentifier": "",
            "CustomerAWSAccountId": ACCOUNT,
            "ProductCode": product,
            "LicenseArn": LICENSE_ARN,
            "Metadata": {"AgreementId": AGREEMENT_ID},
        }

    def _GetEntitlements(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, {
            "Entitlements": [
                {
                    "ProductCode": body.get("ProductCode", PRODUCT_CODE),
                    "Dimension": "users",
                    "CustomerAWSAccountId": ACCOUNT,
                    "LicenseArn": LICENSE_ARN,
                    "Value": {"IntegerValue": 10},
                    "ExpirationDate": int(time.time()) + 30 * 86400,
                }
            ]
        }

    # --- EventBridge and SQS ----------------------------------------------------------------

    def _PutEvents(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        entries = [{"EventId": str(uuid.uuid4())} for _ in body.get("Entries", [])]
        return 200, {"FailedEntryCount": 0, "Entries": entries}

    def _SendMessage(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        digest = hashlib.md5(body.get("MessageBody", "").encode()).hexdigest()  # noqa: S324
        return 200, {"MessageId": str(uuid.uuid4()), "MD5OfMessageBody": digest}

    def _SendMessageBatch(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        successful = [
            {
                "Id": entry["Id"],
                "MessageId": str(uuid.uuid4()),
                "MD5OfMessageBody": hashlib.md5(entry["MessageBody"].encode()).hexdigest(),  # noqa: S324
            }
            for entry in body.get("Entries", [])
        ]
        return 200, {"Successful": successful, "Failed": []}

    # --- DynamoDB ---------------------------------------------------------------------------

    def _GetItem(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        item = self._items.get(_key(body["TableName"], body["Key"]))
        return 200, ({"Item": item} if item is not None else {})

    def _DeleteItem(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self._items.pop(_key(body["TableName"], body["Key"]), None)
        return 200, {}

    def _PutItem(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        item = body["Item"]
        where = _key(body["TableName"], self._key_of(item))
        old = self._items.get(where)
        if old is not None and "ConditionExpression" in body and not self._put_allowed(old, body):
            error: dict[str, Any] = {
                "__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
                "message": "The conditional request failed",
            }
            if body.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD":
                error["Item"] = old
            return 400, error
        self._items[where] = item
        return 200, {}

    @staticmethod
    def _put_allowed(old: dict[str, Any], body: dict[str, Any]) -> bool:
        names = body.get("ExpressionAttributeNames", {})
        if "#expiry" not in names:  # attribute_not_exists(pk): the item exists
            return False
        # Powertools' idempotency record: replace an expired record or a stale INPROGRESS one.
        values = body["ExpressionAttributeValues"]
        expiry = int(old.get(names["#expiry"], {}).get("N", "0"))
        if expiry < int(values[":now"]["N"]):
            return True
        status = old.get(names["#status"], {}).get("S")
        in_progress = old.get(names["#in_progress_expiry"], {}).get("N")
        return (
            status == "INPROGRESS"
            and in_progress is not None
            and int(in_progress) < int(values[":now_in_millis"]["N"])
        )

    def _UpdateItem(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        where = _key(body["TableName"], body["Key"])
        old = self._items.get(where)
        item = dict(old or body["Key"])
        names = body.get("ExpressionAttributeNames", {})
        values = body.get("ExpressionAttributeValues", {})
        expression = body.get("UpdateExpression", "").split(" ADD ")[0]
        if expression.startswith("SET "):
            for name, value in _SET_ASSIGNMENT.findall(expression):
                item[names.get(name, name)] = values[value]
        self._items[where] = item
        if body.get("ReturnValues") == "UPDATED_OLD" and old is not None:
            return 200, {"Attributes": {k: v for k, v in old.items() if k in item}}
        return 200, {}

    def _Query(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        # Enough for the key-only index lookups the functions make: items of the table holding
        # any of the expression's values.
        values = body.get("ExpressionAttributeValues", {}).values()
        wanted = [json.dumps(value, sort_keys=True) for value in values]
        found = [
            item
            for (table, _), item in self._items.items()
            if table == body["TableName"]
            and any(json.dumps(v, sort_keys=True) in wanted for v in item.values())
        ]
        return 200, {"Items": found, "Count": len(found), "ScannedCount": len(found)}

    def _TransactWriteItems(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, {}


class CallClock:
    """Time inside AWS client calls and the operations called, from botocore's own events.

    A call runs from ``provide-client-params`` (the first event of a client method) to
    ``after-call`` (emitted for answers and modelled errors alike) or ``after-call-error``:
    parameter validation, serialization, signing, retries, the (fake) send and parsing.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.operations: Counter[str] = Counter()
        self._started: float | None = None

    def install(self, session: Any) -> None:
        session.events.register("provide-client-params", self._start)
        session.events.register("after-call", self._stop)
        session.events.register("after-call-error", self._stop)

    def reset(self) -> None:
        self.seconds = 0.0
        self.operations.clear()

    def _start(self, event_name: str = "", **_: Any) -> None:
        self._started = time.perf_counter()
        self.operations[event_name.rsplit(".", 1)[-1]] += 1

    def _stop(self, **_: Any) -> None:
        if self._started is not None:
            self.seconds += time.perf_counter() - self._started
            self._started = None


class Context:
    """The Lambda context the handlers read."""

    function_name = "fulfillment-bench"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:fulfillment-bench"
    log_group_name = "/aws/lambda/fulfillment-bench"
    log_stream_name = "bench"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return 20_000


# The function's environment in every benchmark child: no credentials file, no instance
# metadata, no endpoint overrides, so nothing can reach for the network.
def function_environment(base: dict[str, str]) -> dict[str, str]:
    keep = {k: v for k, v in base.items() if k in {"PATH", "HOME", "LANG", "TMPDIR"}}
    return {
        **keep,
        "AWS_ACCESS_KEY_ID": "AKIABENCHBENCHBENCH0",
        "AWS_SECRET_ACCESS_KEY": "bench-secret-not-a-credential",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/nonexistent/aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_LAMBDA_FUNCTION_NAME": "fulfillment-bench",
        "POWERTOOLS_SERVICE_NAME": "fulfillment",
        "POWERTOOLS_METRICS_NAMESPACE": "FulfillmentBench",
        "CUSTOMERS_TABLE_NAME": "customers",
        "CONTACTS_TABLE_NAME": "contacts",
        "IDEMPOTENCY_TABLE_NAME": "idempotency",
        "PRODUCT_CODES": PRODUCT_CODE,
        "RECOVERY_QUEUE_URL": f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/recovery",
        "EVENT_BUS_NAME": "registrations",
        "PUBLISH_RETRY_QUEUE_URL": f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/retry",
    }
