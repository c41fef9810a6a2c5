"""Local stand-ins for Lambda execution environments: spawned worker processes.

Never deployed. Each worker imports its handlers on first use (the init phase; a failed init
is retried next time), keeps module state warm between invocations, runs one invocation at a
time with a Lambda context, and hands back the result round-tripped through JSON as Lambda
does. A pool whose worker dies hard is rebuilt, as Lambda replaces a dead sandbox. The
gateway runs a pool of them; each queue or stream consumer runs one of its own.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib
import json
import multiprocessing
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

LAMBDA_ROOT = Path(__file__).resolve().parents[1] / "lambda"
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
# How long a caller waits for an invocation, in the function's timeouts (a cold first one
# imports the handler too).
INVOKE_TIMEOUT_FACTOR = 3

Handler = Callable[[dict[str, Any], "LambdaContext"], Any]


class LambdaContext:
    """The parts of the Lambda context object that Powertools and handlers read."""

    def __init__(
        self,
        *,
        function_name: str,
        memory_limit_in_mb: int,
        timeout_seconds: float,
        log_stream_name: str,
        aws_request_id: str | None = None,
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}"
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = aws_request_id or str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = log_stream_name
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class FunctionSpec:
    """What a worker runs: the default handler ("pkg.module.func") and the context it gets."""

    handler: str
    function_name: str
    memory_limit_in_mb: int = 512
    timeout_seconds: float = 25.0


# --------------------------------------------------------------------------- worker side


@dataclass
class _Worker:
    spec: FunctionSpec
    barrier: Barrier | None
    # One log stream per execution environment, as in CloudWatch.
    log_stream_name: str
    handlers: dict[str, Handler]


_worker: _Worker | None = None


def _init_worker(
    environment: dict[str, str], sys_path: list[str], spec: FunctionSpec, barrier: Barrier | None
) -> None:
    global _worker
    # Function logs must show up as they happen, not when a pipe buffer fills.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(line_buffering=True)
    for entry in reversed(sys_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    os.environ.update(environment)
    stream = f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
    _worker = _Worker(spec, barrier, stream, {})


def _handler(path: str) -> Handler:
    assert _worker is not None
    if path not in _worker.handlers:
        module_name, _, attribute = path.rpartition(".")
        _worker.handlers[path] = getattr(importlib.import_module(module_name), attribute)
    return _worker.handlers[path]


def _warm() -> int:
    assert _worker is not None
    try:
        _handler(_worker.spec.handler)
    except Exception:
        traceback.print_exc()
    if _worker.barrier is not None:
        with contextlib.suppress(threading.BrokenBarrierError):
            _worker.barrier.wait(timeout=60)
    return os.getpid()


def _invoke(event: dict[str, Any], handler: str | None = None) -> tuple[bool, Any]:
    """Run a handler once; (ok, JSON-safe result or the traceback)."""
    assert _worker is not None
    spec = _worker.spec
    context = LambdaContext(
        function_name=spec.function_name,
        memory_limit_in_mb=spec.memory_limit_in_mb,
        timeout_seconds=spec.timeout_seconds,
        log_stream_name=_worker.log_stream_name,
    )
    try:
        result = _handler(handler or spec.handler)(event, context)
        # Round-trip through JSON as Lambda does: non-serializable results are errors.
        return True, json.loads(json.dumps(result))
    except Exception:
        return False, traceback.format_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


# --------------------------------------------------------------------------- caller side


class Workers:
    """``count`` spawned execution environments for ``spec`` with ``environment`` set and
    ``lambda/`` (plus ``sys_path``) importable."""

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        environment: Mapping[str, str],
        count: int = 1,
        sys_path: list[str] | None = None,
    ) -> None:
        self._context = multiprocessing.get_context("spawn")
        self.count = count
        # Sized to the pool: warm_up's tasks wait on it, so no worker can take two of them.
        self.barrier = self._context.Barrier(count) if count > 1 else None
        paths = [os.path.abspath(p) for p in [*(sys_path or []), str(LAMBDA_ROOT)]]
        self._initargs: tuple[dict[str, str], list[str], FunctionSpec, Barrier | None] = (
            dict(environment),
            paths,
            spec,
            self.barrier,
        )
        self._lock = threading.Lock()
        self._executor = self._new_executor()

    def _new_executor(self) -> concurrent.futures.ProcessPoolExecutor:
        return concurrent.futures.ProcessPoolExecutor(
            max_workers=self.count,
            mp_context=self._context,
            initializer=_init_worker,
            initargs=self._initargs,
        )

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        with self._lock:
            try:
                return self._executor.submit(fn, *args)
            except BrokenProcessPool:
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = self._new_executor()
                return self._executor.submit(fn, *args)

    def invoke(
        self, event: dict[str, Any], handler: str | None = None, *, timeout: float
    ) -> tuple[bool, Any]:
        """One invocation of ``handler`` (the spec's by default): (ok, result or traceback)."""
        ok, result = self.submit(_invoke, event, handler).result(timeout=timeout)
        return bool(ok), result

    def call(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """One invocation of the spec's handler, as an event source mapping makes it: the
        response ({} when it is not an object), or None when it failed (logged)."""
        spec = self._initargs[2]
        ok, result = self.invoke(event, timeout=INVOKE_TIMEOUT_FACTOR * spec.timeout_seconds)
        if not ok:
            sys.stderr.write(f"{spec.function_name} failed\n{result}")
            return None
        return result if isinstance(result, dict) else {}

    def warm_up(self) -> set[int]:
        """Start every worker and import the handler in each; returns the worker pids."""
        futures = [self.submit(_warm) for _ in range(self.count)]
        pids = {future.result(timeout=120) for future in futures}
        if self.barrier is not None and self.barrier.broken:
            self.barrier.reset()
        return {int(pid) for pid in pids}

    def shutdown(self) -> None:
        with self._lock:
            self._executor.shutdown(wait=True, cancel_futures=True)
