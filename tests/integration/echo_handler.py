"""A Lambda proxy handler for the local gateway's tests: echoes what it was given."""

from __future__ import annotations

import json
import os
import time
from typing import Any

# Module state that must survive between invocations in one worker (a warm sandbox).
_invocations = 0


def lambda_handler(event: dict[str, Any], context: Any) -> Any:
    global _invocations
    _invocations += 1
    path = event["path"]
    if path == "/boom":
        raise RuntimeError("the handler failed on purpose")
    if path == "/malformed":
        return {"statusCode": 200, "body": {"not": "a string"}}
    if path == "/cookies":
        return {
            "statusCode": 303,
            "headers": {"Location": "/signup", "Cache-Control": "no-store"},
            "multiValueHeaders": {"Set-Cookie": ["a=1; HttpOnly", "b=2; Secure"]},
            "body": "",
        }
    if path == "/slow":
        time.sleep(0.4)
    print(f"echo handler invoked for {path}", flush=True)
    body = {
        "event": event,
        "pid": os.getpid(),
        "invocations": _invocations,
        "aws_request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(body),
    }
