"""moto's DynamoDB behind a real HTTP endpoint, for the local stack and the tests.

moto's conditional writes are not atomic under concurrent requests (toolchain notes: two
winners in 4 of 600 16-way races), while real DynamoDB is atomic per item. One lock around
request handling makes moto behave like DynamoDB for the idempotency and race tests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

from fulfillment.contract import CONTACTS, CUSTOMERS, IDEMPOTENCY, USAGE, TableSchema
from infra.schema import create_table_request


class _SerializedApp:
    def __init__(self, app: Callable[..., Any]) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        with self._lock:
            # Materialise the body inside the lock: moto computes it lazily in places.
            return list(self._app(environ, start_response))


class _QuietHandler(MotoRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


@dataclass
class RunningDynamoDB:
    server: BaseWSGIServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_dynamodb(host: str = "127.0.0.1", port: int = 0) -> RunningDynamoDB:
    """Start moto's server (DynamoDB and whatever else moto serves) in a daemon thread."""
    app = _SerializedApp(DomainDispatcherApplication(create_backend_app))
    server = make_server(host, port, app, threaded=True, request_handler=_QuietHandler)
    server.socket.listen(256)
    thread = threading.Thread(target=server.serve_forever, name="moto", daemon=True)
    thread.start()
    return RunningDynamoDB(server, thread)


def create_tables(
    client: Any,
    customers_table: str,
    idempotency_table: str,
    contacts_table: str,
    usage_table: str | None = None,
) -> None:
    """Create the stack's tables (and metering's usage table when named) with their keys,
    indexes and TTL, unless they exist."""
    wanted: list[tuple[TableSchema, str]] = [
        (CUSTOMERS, customers_table),
        (IDEMPOTENCY, idempotency_table),
        (CONTACTS, contacts_table),
    ]
    if usage_table:
        wanted.append((USAGE, usage_table))
    # ListTables pages at 100 names: a busy endpoint (a long test session) holds more.
    existing = {
        name
        for page in client.get_paginator("list_tables").paginate()
        for name in page.get("TableNames", [])
    }
    for schema, name in wanted:
        if name not in existing:
            client.create_table(**create_table_request(schema, name))
            client.get_waiter("table_exists").wait(TableName=name)
        if schema.ttl_attribute:
            client.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": schema.ttl_attribute},
            )
