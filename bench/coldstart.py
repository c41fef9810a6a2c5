"""Cold start: a fresh interpreter imports a handler and serves its first request, beside the
floor (a fresh interpreter that only imports boto3 and creates the clients that handler needs).

Measured twice, every function each time. From ``.venv`` (CPython 3.11, its own .pyc). And
from the packaged artifact exactly as deployed: one fresh build of ``infra.packaging`` on
``sys.path`` with its 3.13 bytecode as shipped, run by Pyodide (CPython 3.13 in WebAssembly, so
the shipped .pyc are the ones used) beside boto3/botocore from ``.venv`` compiled to 3.13
beforehand, which stands for the runtime's precompiled boto3. WebAssembly timings are not
Lambda's: only the ratio carries over.

The clock starts at the child's first statement and stops after the first answer, so the
interpreter's own start-up (the same for both) is left out; requests are answered by
``bench.fakes`` (no network), whose import and setup in the handler's child (the Marketplace
stand-in's classes, ~3.5 ms) are timed apart and left out too. Floor and handler run with the
same ``sys.path`` (the function's code directories first, as /var/task is in Lambda for any
function): the extra entries alone cost a floor process 7.6 ms (median of 40, 2026-11-27),
which is the environment's, not the handler's.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import REPO_ROOT, Report, Section, fakes
from bench.report import machine, markdown_table, speed_reference
from fulfillment import contract
from local.lifecycle import customer_key

BUDGET_RATIO = 1.15
# Fresh processes per figure: at least the 10. A .venv process takes ~0.3 s, so its
# figures use 80: on this shared VM one process's speed varies by ~20%, and the ratio of
# medians of 30 moved by ±0.06 between back-to-back runs (the table shows each ratio's 90%
# bootstrap interval). A Pyodide process takes ~1.4 s; its figures use 20 (with 10, the
# 90% interval spanned ±0.1).
DEFAULT_RUNS = 20
DEFAULT_VENV_RUNS = 80
DOCUMENT = REPO_ROOT / "docs" / "performance.md"
FAKES_MODULE = "bench_fakes"
PYODIDE = REPO_ROOT / "node_modules" / "pyodide" / "pyodide.mjs"
# What the python3.13 runtime brings with it (infra/packaging.py ships none of these).
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "urllib3", "jmespath", "dateutil", "six")
SESSION_ID = secrets.token_urlsafe(24)
FIRST_TOKEN = "bench-first-registration-token"

# Runs as ``python -c`` and inside Pyodide alike; configured by BENCH_COLD (JSON).
CHILD = r"""
import time
_T0 = time.perf_counter()
import json, os, sys
CFG = json.loads(os.environ["BENCH_COLD"])
sys.path[:0] = CFG["paths"]
STATUSES = []
IMPORTED = None
if CFG["mode"] == "floor":
    import boto3
    _session = boto3.session.Session()
    _clients = [_session.client(name, region_name="us-east-1") for name in CFG["clients"]]
else:
    import importlib
    _handler = importlib.import_module(CFG["module"]).lambda_handler
    IMPORTED = time.perf_counter() - _T0
    # The fakes' own import and setup are the benchmark's, not the function's: left out.
    _FAKES = time.perf_counter()
    import bench_fakes
    _fake = bench_fakes.FakeAws(
        items=[tuple(item) for item in CFG["items"]], tokens=[tuple(t) for t in CFG["tokens"]]
    )
    _T0 += time.perf_counter() - _FAKES
    from fulfillment.core import aws as _aws
    _fake.install(_aws.session())
    for _event in CFG["events"]:
        _answer = _handler(_event, bench_fakes.Context())
        if _answer is None:  # a function without a partial batch response (recovery)
            STATUSES.append("done")
        else:
            _failed = "%d failed" % len(_answer.get("batchItemFailures", []))
            STATUSES.append(_answer.get("statusCode", _failed))
ELAPSED = time.perf_counter() - _T0
try:
    import resource
    RSS = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
except ImportError:
    RSS = None
_shipped = CFG.get("shipped") or "/nonexistent/"
_files = [
    (m.__file__, getattr(m, "__cached__", None))
    for m in list(sys.modules.values())
    if (getattr(m, "__file__", None) or "").endswith(".py")
]
_ours = [(f, c) for f, c in _files if f.startswith(_shipped)]
RESULT = json.dumps({
    "seconds": ELAPSED,
    "imported": IMPORTED,
    "rss": RSS,
    "statuses": STATUSES,
    "modules": len(_files),
    "with_pyc": sum(1 for f, c in _files if c and os.path.exists(c)),
    "shipped": len(_ours),
    "shipped_with_pyc": sum(1 for f, c in _ours if c and os.path.exists(c)),
    "python": sys.version.split()[0],
})
if CFG.get("out"):
    with open(CFG["out"], "w") as _file:
        _file.write(RESULT)
"""

# One fresh Pyodide interpreter per job, in one Node process (loading WebAssembly per job
# is the same fresh CPython; only Node's start-up is shared).
RUNNER = r"""
import { loadPyodide } from "PYODIDE";
import { readFileSync } from "node:fs";
const jobs = JSON.parse(readFileSync(process.argv[2], "utf8"));
for (const job of jobs) {
  const errors = [];
  const py = await loadPyodide({
    env: job.env, stdout: () => {}, stderr: (line) => errors.push(line),
  });
  for (const dir of job.mounts) {
    py.FS.mkdirTree(dir);
    py.FS.mount(py.FS.filesystems.NODEFS, { root: dir }, dir);
  }
  try {
    py.runPython(job.code);
    console.log(JSON.stringify({ ok: true, result: JSON.parse(py.globals.get("RESULT") || "{}") }));
  } catch (error) {
    const failure = { ok: false, error: String(error).slice(-3000), stderr: errors.slice(-20) };
    console.log(JSON.stringify(failure));
  }
}
process.exit(0);
"""

# Pyodide has no ssl module offline (it is a separate download). boto3 imports it but never
# uses it here (no TLS happens): this stand-in lives in the temporary runtime directory only.
SSL_STAND_IN = '''"""Benchmark stand-in for ssl under Pyodide: no TLS happens in the benchmark."""
import enum
CERT_NONE, CERT_OPTIONAL, CERT_REQUIRED = 0, 1, 2
HAS_NEVER_CHECK_COMMON_NAME = True
HAS_SNI = True
OP_NO_COMPRESSION, OP_NO_TICKET, OP_NO_SSLv2, OP_NO_SSLv3 = 0x20000, 0x4000, 0x1000000, 0x2000000
OPENSSL_VERSION = "OpenSSL 3.0.0 (benchmark stand-in)"
OPENSSL_VERSION_NUMBER = 0x30000000
OPENSSL_VERSION_INFO = (3, 0, 0, 0, 0)
PROTOCOL_TLS = PROTOCOL_SSLv23 = 2
PROTOCOL_TLS_CLIENT = 16
VERIFY_X509_PARTIAL_CHAIN, VERIFY_X509_STRICT = 0x80000, 0x20
class TLSVersion(enum.IntEnum):
    MINIMUM_SUPPORTED = -2
    MAXIMUM_SUPPORTED = -1
    SSLv3 = 768
    TLSv1 = 769
    TLSv1_1 = 770
    TLSv1_2 = 771
    TLSv1_3 = 772
class VerifyMode(enum.IntEnum):
    CERT_NONE = 0
    CERT_OPTIONAL = 1
    CERT_REQUIRED = 2
class SSLError(OSError): pass
class SSLZeroReturnError(SSLError): pass
class SSLWantReadError(SSLError): pass
class SSLWantWriteError(SSLError): pass
class SSLEOFError(SSLError): pass
class SSLCertVerificationError(SSLError, ValueError): pass
CertificateError = SSLCertVerificationError
class SSLObject: pass
class SSLSocket: pass
class SSLContext:
    def __init__(self, protocol=PROTOCOL_TLS_CLIENT, *args, **kwargs):
        self.protocol = protocol
        self.options = 0
        self.verify_mode = CERT_REQUIRED
        self.check_hostname = True
        self.minimum_version = TLSVersion.MINIMUM_SUPPORTED
        self.maximum_version = TLSVersion.MAXIMUM_SUPPORTED
        self.post_handshake_auth = None
        self.hostname_checks_common_name = False
    def __getattr__(self, name):
        return lambda *args, **kwargs: None
def create_default_context(*args, **kwargs):
    return SSLContext()
'''

COMPILE_RUNTIME = r"""
import compileall, py_compile, sys
ok = compileall.compile_dir(RUNTIME, quiet=1,
    invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
RESULT = '{"ok": %s, "python": "%s"}' % ("true" if ok else "false", sys.version.split()[0])
"""


@dataclass(frozen=True)
class Function:
    """A Lambda entry point, the clients its floor creates, its first request, its data."""

    name: str
    module: str
    clients: tuple[str, ...]
    events: list[dict[str, Any]]
    items: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # (token, stand-in customer) pairs the Marketplace stand-in accepts.
    tokens: list[tuple[str, str]] = field(default_factory=list)
    # The budget holds where a buyer waits; the queue consumers' cost is measured, not judged.
    budgeted: bool = False


def _items() -> list[tuple[str, dict[str, Any]]]:
    """The buyer as registered, and a live sign-up session for them (the customers table)."""
    buyer = fakes.BUYER
    now = datetime.now(UTC)
    customer = customer_key(buyer)
    session = {
        contract.PK: {"S": contract.SESSION_PREFIX + SESSION_ID},
        contract.SK: {"S": contract.SESSION_SK},
        "entity": {"S": "session"},
        "customer_pk": customer[contract.PK],
        "product_code": {"S": buyer.product_code},
        "created_at": {"S": now.isoformat(timespec="milliseconds")},
        contract.EXPIRES_AT: {"N": str(int(now.timestamp()) + 3600)},
        "csrf_token": {"S": secrets.token_urlsafe(24)},
    }
    customer |= {
        "entity": {"S": "customer"},
        "product_code": {"S": buyer.product_code},
        "customer_aws_account_id": {"S": buyer.customer_aws_account_id},
        "license_arn": {"S": str(buyer.license_arn)},
        "registration_count": {"N": "1"},
    }
    return [("customers", session), ("customers", customer)]


def functions() -> list[Function]:
    """Every entry point with a real-shaped first request (the test suite's event fixtures)."""
    from tests.events import form_post, rest_event
    from tests.handoff_events import registration_request
    from tests.lifecycle_events import PRODUCT, sqs_event
    from tests.lifecycle_events import event as lifecycle_event
    from tests.registration_events import stream_event

    assert PRODUCT == fakes.PRODUCT_CODE, "the fixtures' product is the stand-in buyers' product"
    buyer = fakes.BUYER
    signup = rest_event(method="GET", body=None, content_type=None)
    signup["path"] = signup["resource"] = "/signup"
    signup["queryStringParameters"] = {"registration": SESSION_ID}
    signup["multiValueQueryStringParameters"] = {"registration": [SESSION_ID]}
    parked = {
        "version": 1,
        "registration_id": secrets.token_urlsafe(24),
        "product_code": buyer.product_code,
        "customer_aws_account_id": buyer.customer_aws_account_id,
        "license_arn": buyer.license_arn,
        "customer_identifier": None,
        "agreement_id": buyer.agreement_id,
        "session_expires_at": int(datetime.now(UTC).timestamp()) + 3600,
        "csrf_token": secrets.token_urlsafe(24),
        "registered_at": datetime.now(UTC).isoformat(),
        "request_id": "bench-parked",
    }

    def module(handler: str) -> str:
        return handler.rsplit(".", 1)[0]

    return [
        Function(
            "fulfillment (api)",
            module(contract.FULFILLMENT_HANDLER),
            ("dynamodb", "meteringmarketplace"),
            [form_post(FIRST_TOKEN)],
            tokens=[(FIRST_TOKEN, buyer.name)],
            budgeted=True,
        ),
        Function(
            "signup",
            module(contract.SIGNUP_HANDLER),
            ("dynamodb",),
            [signup],
            _items(),
            budgeted=True,
        ),
        Function(
            "handoff",
            module(contract.HANDOFF_HANDLER),
            ("dynamodb",),
            [registration_request(SESSION_ID)],
            _items(),
            budgeted=True,
        ),
        Function(
            "publisher",
            module(contract.PUBLISHER_HANDLER),
            ("events", "sqs"),
            [stream_event("first_registration")],
        ),
        Function(
            "lifecycle",
            module(contract.LIFECYCLE_HANDLER),
            ("dynamodb", "marketplace-entitlement"),
            [sqs_event(lifecycle_event("license_updated_manufacturer"))],
            _items()[1:],
        ),
        Function(
            "recovery",
            module(contract.RECOVERY_HANDLER),
            ("dynamodb",),
            [sqs_event(json.dumps(parked))],
        ),
    ]


def child_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """A benchmark child's environment: ``bench.fakes.function_environment`` plus ``extra``."""
    return {**fakes.function_environment(dict(os.environ)), **extra}


def _config(function: Function, mode: str, paths: list[str]) -> dict[str, Any]:
    return {
        "mode": mode,
        "module": function.module,
        "clients": list(function.clients),
        "events": function.events,
        "items": [list(item) for item in function.items],
        "tokens": [list(token) for token in function.tokens],
        "paths": paths,
    }


def _copy_fakes(target: Path) -> Path:
    """bench/fakes.py as the top-level module ``bench_fakes``, with the stand-in it imports."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(fakes.__file__), target / f"{FAKES_MODULE}.py")
    for name in fakes.SHARED_FILES:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / name, target / name)
    return target


def _run_venv_child(config: dict[str, Any], work: Path) -> dict[str, Any]:
    out = work / "result.json"
    out.unlink(missing_ok=True)
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", CHILD],
        env=child_environment({"BENCH_COLD": json.dumps({**config, "out": str(out)})}),
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"cold-start child failed ({config['mode']}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.read_text())
    return {"ok": True, "result": result}


@dataclass
class Runs:
    floor: list[dict[str, Any]] = field(default_factory=list)
    handler: list[dict[str, Any]] = field(default_factory=list)

    def median(self, which: str) -> float:
        return float(statistics.median(run["seconds"] for run in getattr(self, which)))

    @property
    def ratio(self) -> float:
        return self.median("handler") / self.median("floor")

    def ratio_interval(self, resamples: int = 2000) -> tuple[float, float]:
        """A 90% bootstrap interval of ``ratio``: how far this machine's noise alone moves it
        (each process's speed here varies by ~20%, so a ratio near the budget can fall
        either side of it from one run to the next)."""
        # Seeded: the same runs always give the same interval (resampling, not secrets).
        rng = random.Random(1795)  # noqa: S311
        floor = [run["seconds"] for run in self.floor]
        handler = [run["seconds"] for run in self.handler]
        ratios = sorted(
            statistics.median(rng.choices(handler, k=len(handler)))
            / statistics.median(rng.choices(floor, k=len(floor)))
            for _ in range(resamples)
        )
        return ratios[int(0.05 * resamples)], ratios[int(0.95 * resamples) - 1]


@dataclass
class Measured:
    """Every function's runs (floor and handler), and the functions whose runs failed."""

    runs: dict[str, Runs] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


def _measured(
    function_list: list[Function],
    schedule: list[tuple[str, Function]],
    answers: list[dict[str, Any]],
) -> Measured:
    """The answers of ``schedule``'s processes, in order, as each function's runs."""
    result = Measured()
    floors: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    handlers: dict[str, list[dict[str, Any]]] = {}
    for (mode, function), answer in zip(schedule, answers, strict=True):
        if not answer["ok"]:
            # A failed floor leaves every function with those clients without its floor.
            hit = [f for f in function_list if f.clients == function.clients]
            error = f"{mode} failed: {answer['error']}\n" + "\n".join(answer["stderr"])
            for each in [function] if mode == "handler" else hit:
                result.failures.setdefault(each.name, error)
        elif mode == "floor":
            floors.setdefault(function.clients, []).append(answer["result"])
        else:
            handlers.setdefault(function.name, []).append(answer["result"])
    for function in function_list:
        if function.name not in result.failures:
            result.runs[function.name] = Runs(floors[function.clients], handlers[function.name])
    return result


def measure_venv(
    function_list: list[Function], runs: int, work: Path
) -> tuple[dict[str, Runs], list[str]]:
    """``runs`` rounds of ``_schedule`` from ``.venv``, one process after the other."""
    fakes_dir = _copy_fakes(work / "fakes")
    compileall.compile_dir(fakes_dir, quiet=1)
    paths = [str(REPO_ROOT / "lambda"), str(fakes_dir)]  # the floor's too (module docstring)
    schedule = _schedule(function_list, runs)
    answers = [_run_venv_child(_config(function, mode, paths), work) for mode, function in schedule]
    measured = _measured(function_list, schedule, answers).runs
    problems = []
    for name, each in measured.items():
        statuses = {json.dumps(run["statuses"]) for run in each.handler}
        if len(statuses) != 1:
            problems.append(f"{name}: first answers differ between runs: {statuses}")
    return measured, problems


def _runtime_stand_in(root: Path) -> Path:
    """What the python3.13 runtime brings (boto3 and its dependencies, from .venv), an ssl
    stand-in, and the benchmark's fakes."""
    import importlib.util

    runtime = _copy_fakes(root / "runtime")
    for name in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise RuntimeError(f"{name} is not installed in .venv")
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        if source.is_dir():
            ignore = shutil.ignore_patterns("__pycache__")
            shutil.copytree(source, runtime / source.name, ignore=ignore)
        else:
            shutil.copy(source, runtime / source.name)
    (runtime / "ssl.py").write_text(SSL_STAND_IN)
    return runtime


def _schedule(function_list: list[Function], runs: int) -> list[tuple[str, Function]]:
    """``runs`` rounds; each runs every handler once and one floor per distinct client tuple
    (shared by the functions with the same clients), in an order shuffled per round (seeded),
    so drift on the machine hits floors and handlers alike and no function always runs
    right after the same process."""
    rng = random.Random(2026)  # noqa: S311 (an order, not a secret)
    schedule: list[tuple[str, Function]] = []
    for _ in range(runs):
        floors = {function.clients: function for function in reversed(function_list)}
        one_round = [("floor", function) for function in floors.values()]
        one_round += [("handler", function) for function in function_list]
        rng.shuffle(one_round)
        schedule += one_round
    return schedule


def _run_pyodide(jobs: list[dict[str, Any]], work: Path) -> list[dict[str, Any]]:
    """Every job in one Node process, one fresh Pyodide each; one answer per job, in order."""
    (work / "jobs.json").write_text(json.dumps(jobs))
    (work / "runner.mjs").write_text(RUNNER.replace("PYODIDE", PYODIDE.as_uri()))
    done = subprocess.run(  # noqa: S603
        [shutil.which("node") or "node", str(work / "runner.mjs"), str(work / "jobs.json")],
        capture_output=True,
        text=True,
        timeout=max(900, 30 * len(jobs)),
        check=False,
    )
    answers = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if len(answers) != len(jobs):
        raise RuntimeError(
            f"Pyodide cold start stopped after {len(answers)} of {len(jobs)} jobs "
            f"(node exit {done.returncode}):\n{done.stderr[-3000:]}"
        )
    return answers


def measure_artifact_pyodide(
    function_list: list[Function], runs: int, work: Path
) -> tuple[str, Measured]:
    """The shipped artifact's cold path under CPython 3.13 (Pyodide), beside its floor, for
    every function: one artifact build, one runtime stand-in compiled once, one Node process.
    Returns Pyodide's Python version and the runs."""
    from bench import size

    artifact = size.fresh_artifact()
    runtime = _runtime_stand_in(work)
    mounts = sorted({str(work), str(artifact.directory)})
    env = child_environment({"AWS_DATA_PATH": str(artifact.directory / "botocore-data")})
    paths = [str(artifact.directory), str(runtime)]  # the floor's too (module docstring)
    schedule = _schedule(function_list, runs)
    jobs: list[dict[str, Any]] = [
        {
            "env": {"HOME": "/home/pyodide"},
            "mounts": mounts,
            "code": f"RUNTIME = {str(runtime)!r}\n{COMPILE_RUNTIME}",
        }
    ]
    for mode, function in schedule:
        config = {**_config(function, mode, paths), "shipped": str(artifact.directory) + "/"}
        env_job = {**env, "BENCH_COLD": json.dumps(config)}
        jobs.append({"env": env_job, "mounts": mounts, "code": CHILD})
    compiled, *answers = _run_pyodide(jobs, work)
    if not compiled["ok"] or not compiled["result"]["ok"]:
        raise RuntimeError(f"Pyodide could not compile the runtime stand-in: {compiled}")
    return compiled["result"]["python"], _measured(function_list, schedule, answers)


def _figures(function: Function, measured: Runs) -> list[str]:
    """floor ms, handler ms, of which import ms, ratio (interval), verdict (buyer-facing
    functions only: the queue consumers have no budget)."""
    low, high = measured.ratio_interval()
    imported = statistics.median(run["imported"] for run in measured.handler)
    return [
        f"{measured.median('floor') * 1000:.0f}",
        f"{measured.median('handler') * 1000:.0f}",
        f"{imported * 1000:.0f}",
        f"{measured.ratio:.2f} ({low:.2f}-{high:.2f})",
        ("pass" if measured.ratio <= BUDGET_RATIO else "**fail**")
        if function.budgeted
        else "no budget",
    ]


def _answers(run: dict[str, Any]) -> str:
    return ", ".join(str(status) for status in run["statuses"])


def _shipped_pyc(measured: Runs) -> tuple[int, int]:
    """(imported from a shipped .pyc, artifact modules imported) in the handler run that
    missed the most .pyc."""
    worst = max(measured.handler, key=lambda run: run["shipped"] - run["shipped_with_pyc"])
    return worst["shipped_with_pyc"], worst["shipped"]


def _artifact_section(
    function_list: list[Function], python: str, artifact: Measured, venv: dict[str, Runs]
) -> tuple[list[str], list[str]]:
    """The artifact table (one row per function) and what it shows wrong: a failed function,
    first answers unlike the .venv's, an artifact module imported without its shipped .pyc."""
    problems: list[str] = []
    rows: list[list[str]] = []
    pyc: list[str] = []
    for function in function_list:
        if function.name in artifact.failures:
            failure = artifact.failures[function.name]
            problems.append(f"{function.name}: artifact under Pyodide: {failure}"[:2000])
            rows.append([function.name, *["failed"] * 6])
            continue
        measured = artifact.runs[function.name]
        rows.append([function.name, *_figures(function, measured), _answers(measured.handler[0])])
        statuses = {json.dumps(run["statuses"]) for run in measured.handler}
        expected = json.dumps(venv[function.name].handler[0]["statuses"])
        if statuses != {expected}:
            problems.append(
                f"{function.name}: the artifact answered {sorted(statuses)}, .venv {expected}"
            )
        with_pyc, imported = _shipped_pyc(measured)
        pyc.append(f"{function.name} {with_pyc} of {imported}")
        if imported == 0:
            problems.append(f"{function.name}: imported no module from the artifact")
        elif with_pyc < imported:
            problems.append(
                f"{function.name}: {imported - with_pyc} of {imported} artifact modules "
                "imported had no shipped .pyc (packaging mistake)"
            )
    lines = [
        "",
        "**From the packaged artifact** (one fresh `infra.packaging` build on `sys.path`, its "
        "3.13 .pyc as shipped, run by Pyodide = CPython "
        f"{python} in WebAssembly; boto3/botocore from `.venv` compiled to 3.13 "
        "beforehand stand for the runtime's; artifact modules imported that came from a shipped "
        f".pyc: {'; '.join(pyc) or 'none measured'}). WebAssembly is several times slower than "
        "Lambda: read the ratio, not the milliseconds.",
        "",
        markdown_table(
            [
                "function",
                "floor ms (wasm)",
                "handler ms (wasm)",
                "of which import ms",
                "ratio (90% interval)",
                "budget ≤ 1.15x",
                "first answer",
            ],
            rows,
        ),
    ]
    return lines, problems


def run(args: argparse.Namespace) -> Report:
    runs = max(int(getattr(args, "cold_runs", DEFAULT_RUNS)), 1)
    venv_runs = max(int(getattr(args, "venv_runs", DEFAULT_VENV_RUNS)), 1)
    reference_before = speed_reference()
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as directory:
        work = Path(directory)
        function_list = functions()
        venv, found = measure_venv(function_list, venv_runs, work)
        problems += found
        rows = []
        for function in function_list:
            measured = venv[function.name]
            rss = statistics.median(run["rss"] or 0 for run in measured.handler) / 2**20
            rows.append(
                [
                    function.name,
                    " + ".join(function.clients),
                    *_figures(function, measured),
                    f"{rss:.0f}" if rss else "n/a",
                    _answers(measured.handler[0]),
                ]
            )
        first = venv[function_list[0].name].handler[0]
        lines = [
            f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}; "
            f"load average {os.getloadavg()[0]:.2f}; speed reference {reference_before:.1f} ms "
            f"before, {speed_reference():.1f} ms after (`bench.report.speed_reference`, lower "
            "is faster). Budget, for the buyer-facing functions (fulfillment URL, sign-up, "
            f"hand-off): handler ≤ {BUDGET_RATIO:.2f}x the floor (median of {venv_runs} fresh "
            f"processes each from `.venv`, {runs} from the artifact); the queue consumers' "
            "cost is shown, with no budget.",
            "",
            "**From `.venv`** (CPython 3.11; "
            f"{first['with_pyc']} of {first['modules']} .py modules imported by the fulfillment "
            "child had a 3.11 .pyc): the floor imports boto3 and creates the listed clients "
            "from one session; the handler imports its module and serves one request; both "
            "with the handler's `sys.path` (the code directory first, as in Lambda). Each round "
            "runs every floor and handler once in a shuffled order; functions with the same "
            "clients share the floor. "
            "The verdict is the ratio of medians; the interval (bootstrap) is how far this "
            "machine's noise alone moves it.",
            "",
            markdown_table(
                [
                    "function",
                    "floor clients",
                    "floor ms",
                    "handler ms",
                    "of which import ms",
                    "ratio (90% interval)",
                    "budget ≤ 1.15x",
                    "peak RSS MiB",
                    "first answer",
                ],
                rows,
            ),
        ]
        if getattr(args, "no_pyodide", False):
            lines += ["", "Artifact under Pyodide: skipped (--no-pyodide)."]
        else:
            try:
                python, artifact = measure_artifact_pyodide(function_list, runs, work)
            except (RuntimeError, subprocess.TimeoutExpired) as error:
                problems.append(str(error)[:2000])
            else:
                found_lines, found = _artifact_section(function_list, python, artifact, venv)
                lines += found_lines
                problems += found
    return Report(
        markdown="\n".join(lines),
        document=DOCUMENT,
        document_title="Performance",
        heading="## Cold start",
        marker="coldstart",
        problems=problems,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cold-runs",
        type=int,
        default=DEFAULT_RUNS,
        help=f"fresh processes per artifact (Pyodide) figure (default {DEFAULT_RUNS})",
    )
    parser.add_argument(
        "--venv-runs",
        type=int,
        default=DEFAULT_VENV_RUNS,
        help=f"fresh processes per .venv figure (default {DEFAULT_VENV_RUNS})",
    )
    parser.add_argument(
        "--no-pyodide", action="store_true", help="cold start from .venv only (no artifact run)"
    )


SECTION = Section(
    name="coldstart",
    help="cold start vs the boto3 floor, from .venv and from the artifact (Pyodide)",
    add_arguments=add_arguments,
    run=run,
)
