"""The one small HTTP server behind the local gateway and the Marketplace stand-in.

Never deployed. ``http.server`` with the toolchain notes' fixes: a listen backlog for bursts of
clients and no Nagle stall on kept-alive connections. Request lines are never logged (a query
string can hold a token); an ``access_log`` prefix logs method, path, status and time only.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

if TYPE_CHECKING:
    from http.server import ThreadingHTTPServer

# Framing headers are the server's business, never an app's.
HOP_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})
_MAX_DRAIN_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class LocalRequest:
    """One request as an app sees it; ``query`` and ``headers`` keep the last value of a name,
    ``query_string`` and ``header_items`` every one."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    query_string: str = ""
    header_items: tuple[tuple[str, str], ...] = ()
    client: str = "127.0.0.1"

    def header(self, name: str) -> str:
        """The last value of header ``name`` (any case), or ""."""
        found = [value for key, value in self.header_items if key.lower() == name.lower()]
        return found[-1] if found else ""


@dataclass(frozen=True)
class LocalResponse:
    status: int
    headers: Mapping[str, str] | Iterable[tuple[str, str]] = field(default_factory=dict)
    body: bytes = b""

    def header_items(self) -> list[tuple[str, str]]:
        items = self.headers.items() if isinstance(self.headers, Mapping) else self.headers
        return [(name, value) for name, value in items if name.lower() not in HOP_HEADERS]


App = Callable[[LocalRequest], LocalResponse]
# An app's answer to a body that cannot be read: (status 400 or 413, reason) -> response.
Refusal = Callable[[int, str], LocalResponse]


class _UnreadableBodyError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def _read_body(rfile: Any, headers: Any, max_bytes: int) -> bytes:
    if "chunked" in (headers.get("Transfer-Encoding") or "").lower():
        chunks: list[bytes] = []
        while size := int(rfile.readline(1024).split(b";", 1)[0].strip() or b"0", 16):
            if sum(map(len, chunks)) + size > max_bytes:
                raise _UnreadableBodyError(413, "body too large")
            chunks.append(rfile.read(size))
            rfile.readline(1024)
        while rfile.readline(1024) not in (b"\r\n", b"\n", b""):
            pass
        return b"".join(chunks)
    length = int(headers.get("Content-Length") or 0)
    if length < 0:
        raise ValueError("negative Content-Length")
    if length > max_bytes:
        # Drain a moderately oversized body so the client reads the answer, not a reset.
        remaining = length if length <= _MAX_DRAIN_BYTES else 0
        while remaining > 0 and (chunk := rfile.read(min(remaining, 1 << 20))):
            remaining -= len(chunk)
        raise _UnreadableBodyError(413, "body too large")
    return bytes(rfile.read(length)) if length else b""


@dataclass
class RunningServer:
    """A server on a daemon thread: its URL and port, and how to stop it."""

    url: str
    port: int
    _server: ThreadingHTTPServer = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve(
    app: App,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    name: str,
    refuse: Refusal,
    max_body_bytes: int,
    access_log: str | None = None,
) -> RunningServer:
    """Serve ``app`` on host:port (0: a free port) from a daemon thread named ``name``."""
    # Imported here, not at the top: the benchmark loads the Marketplace stand-in into a timed
    # cold start without serving it.
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else ~40 ms per call on a reused connection
        timeout = 60  # an idle kept-alive connection does not hold a thread forever

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _answer(self) -> None:
            started = time.perf_counter()
            parts = urlsplit(self.path)
            try:
                body = _read_body(self.rfile, self.headers, max_body_bytes)
            except (_UnreadableBodyError, ValueError) as exc:
                self.close_connection = True
                status = exc.status if isinstance(exc, _UnreadableBodyError) else 400
                response = refuse(status, str(exc))
            else:
                items = tuple(self.headers.items())
                request = LocalRequest(
                    method=self.command,
                    path=parts.path or "/",
                    query=dict(parse_qsl(parts.query, keep_blank_values=True)),
                    headers=dict(items),
                    body=body,
                    query_string=parts.query,
                    header_items=items,
                    client=str(self.client_address[0]),
                )
                try:
                    response = app(request)
                except Exception:
                    traceback.print_exc()
                    response = refuse(500, "internal error")
            if access_log is not None:
                # Written before the answer, so the line is out by the time the client has it.
                elapsed = (time.perf_counter() - started) * 1000
                sys.stderr.write(
                    f"{access_log} {self.command} {parts.path} {response.status} {elapsed:.1f}ms\n"
                )
            self._send(response)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _answer

        def _send(self, response: LocalResponse) -> None:
            self.send_response_only(response.status)
            self.send_header("Date", self.date_time_string())
            for header, value in response.header_items():
                self.send_header(header, value)
            self.send_header("Content-Length", str(len(response.body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256  # http.server's backlog of 5 resets bursts of clients

    server = Server((host, port), Handler)
    bound = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    url_host = f"[{host}]" if ":" in host else host
    return RunningServer(f"http://{url_host}:{bound}", bound, server, thread)
