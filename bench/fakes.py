"""In-process AWS for the benchmark: real botocore clients, answered without a socket.

``FakeAws.install(session)`` registers a ``before-send`` handler, so botocore still validates,
serializes, signs and parses as in production; only the socket is missing. Marketplace calls
are answered by the local stand-in (local/marketplace.py, the one `make run` and the tests
use); DynamoDB, EventBridge and SQS from memory here, shaped like the real services' answers
(moto cannot run in the cold start's Pyodide child, and its own time would be measured). A
``CallClock`` times every client call (``provide-client-params`` to ``after-call``) and counts
operations and attempts.

The cold-start children load this file by path, as ``bench_fakes`` beside a copy of the
stand-in (``SHARED_FILES``), from an isolated interpreter, never through ``bench``.
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

from fulfillment import contract
from local.marketplace import MarketplaceStandIn, default_customers

# The test fixtures' product (tests/lifecycle_events.py): the stand-in's "new-style" buyer of it
# is the lifecycle fixtures' customer, so every function's first request finds its data.
PRODUCT_CODE = "prod-integration1"
BUYER = default_customers(PRODUCT_CODE)[0]
# What a cold-start child imports besides this file (paths under the repository root).
SHARED_FILES = ("local/__init__.py", "local/server.py", "local/marketplace.py")
_MARKETPLACE_TARGETS = ("AWSMPMeteringService.", "AWSMPEntitlementService.")
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
    """Answers Marketplace (through the stand-in), DynamoDB, PutEvents and SQS in memory.

    ``tokens`` are (token, customer name) pairs the stand-in accepts, e.g. a fixture's token.
    DynamoDB keeps items per table and honours the conditional puts the functions make (the
    idempotency record, returned with ReturnValuesOnConditionCheckFailure=ALL_OLD as DynamoDB
    does, and attribute_not_exists(pk) on sessions).
    """

    def __init__(
        self,
        *,
        items: Iterable[tuple[str, dict[str, Any]]] = (),
        tokens: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.marketplace = MarketplaceStandIn(default_customers(PRODUCT_CODE))
        for token, customer in tokens:
            self.marketplace.issue_token(customer, token)
        self.attempts: Counter[str] = Counter()
        self._items: dict[tuple[str, str], dict[str, Any]] = {}
        for table, item in items:
            self._items[_key(table, self._key_of(item))] = item

    @staticmethod
    def _key_of(item: dict[str, Any]) -> dict[str, Any]:
        names = (contract.PK, contract.SK, contract.IDEMPOTENCY.partition_key)
        return {name: item[name] for name in names if name in item}

    def install(self, session: Any) -> None:
        """Answer every request of clients created from ``session`` from now on."""
        session.events.register("before-send", self.send)

    def send(self, request: Any, **_: Any) -> AWSResponse:
        target = request.headers.get("X-Amz-Target", b"")
        target = target.decode() if isinstance(target, bytes) else str(target)
        operation = target.rsplit(".", 1)[-1]
        self.attempts[operation] += 1
        if target.startswith(_MARKETPLACE_TARGETS):
            status, answer = self.marketplace.call(target, request.body or b"")
            content_type = "application/x-amz-json-1.1"
        else:
            handler = getattr(self, "_" + operation, self._empty)
            status, answer = handler(json.loads(request.body or b"{}"))
            content_type = "application/x-amz-json-1.0"
        headers = {"x-amzn-requestid": str(uuid.uuid4()), "content-type": content_type}
        raw = _Raw(json.dumps(answer).encode())
        # A plain dict, which AWSResponse wraps in its HeadersDict (the stubs ask for the
        # http.client message botocore's own HTTP layer hands it).
        return AWSResponse(request.url, status, headers, raw)  # type: ignore[arg-type]

    @staticmethod
    def _empty(_: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, {}

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
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:fulfillment-bench"
    log_group_name = "/aws/lambda/fulfillment-bench"
    log_stream_name = "bench"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return 20_000


def function_environment(base: dict[str, str]) -> dict[str, str]:
    """The function's environment in every benchmark child: no credentials file, no instance
    metadata, no endpoint overrides, so nothing can reach for the network."""
    keep = {k: v for k, v in base.items() if k in {"PATH", "HOME", "LANG", "TMPDIR"}}
    queue = "https://sqs.us-east-1.amazonaws.com/123456789012/"
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
        contract.POWERTOOLS_SERVICE_NAME: contract.DEFAULT_SERVICE_NAME,
        contract.POWERTOOLS_METRICS_NAMESPACE: "FulfillmentBench",
        contract.CUSTOMERS_TABLE_NAME: "customers",
        contract.CONTACTS_TABLE_NAME: "contacts",
        contract.IDEMPOTENCY_TABLE_NAME: "idempotency",
        contract.PRODUCT_CODES: PRODUCT_CODE,
        contract.RECOVERY_QUEUE_URL: queue + "recovery",
        contract.EVENT_BUS_NAME: "registrations",
        contract.PUBLISH_RETRY_QUEUE_URL: queue + "retry",
    }
