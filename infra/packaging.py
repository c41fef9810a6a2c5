"""Builds the function's deployable artifact for python3.13 on arm64 with pip and Node only
(no container engine).

The artifact relies on the Lambda runtime's own boto3/botocore (already compiled by AWS) and
ships only what the runtime lacks: the ``fulfillment`` package, Powertools, MarkupSafe,
typing_extensions, and the current ``meteringmarketplace`` model, which botocore reads from
``AWS_DATA_PATH`` ahead of its bundled one (the runtime's model can predate ``LicenseArn`` and
``Metadata.AgreementId``). Every ``.py`` gets a CPython 3.13 ``.pyc`` compiled by Pyodide,
because Lambda's code directory is read-only and a 3.11 ``.pyc`` would be ignored.

``python -m infra.packaging`` builds ``build/function`` and ``build/function.zip``.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TASK_ROOT = "/var/task"
DATA_DIR_NAME = "botocore-data"
# For the function's environment: botocore loads models from here ahead of its bundled ones.
DATA_PATH_ENV = {"AWS_DATA_PATH": f"{TASK_ROOT}/{DATA_DIR_NAME}"}

PYTHON_VERSION = "3.13"
PYC_TAG = "cpython-313"
PYC_MAGIC = b"\xf3\r\r\n"
PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64")
# What the runtime lacks. boto3, botocore, s3transfer, jmespath, dateutil, six and urllib3
# come with the runtime (jmespath, which Powertools needs, is a boto3 dependency).
SHIPPED_DISTRIBUTIONS = ("aws-lambda-powertools", "markupsafe", "typing_extensions")
METERING_MODEL = Path("meteringmarketplace", "2016-01-14", "service-2.json")
# GetEntitlements' LICENSE_ARN filter is newer than some runtime botocore releases.
ENTITLEMENT_MODEL = Path("marketplace-entitlement", "2017-01-11", "service-2.json")
# GetAgreementTerms' freeTrialPricingTerm: a runtime model without it would parse it away.
AGREEMENT_MODEL = Path("marketplace-agreement", "2020-03-01", "service-2.json")
SHIPPED_MODELS = (METERING_MODEL, ENTITLEMENT_MODEL, AGREEMENT_MODEL)

PIP_CACHE = REPO_ROOT / "build" / "pip-cache"
COMPILER = Path(__file__).resolve().parent / "compile_bytecode.mjs"

# Never imported at run time: install bookkeeping, type stubs, C sources of built extensions.
_STRIPPED_NAMES = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json", "py.typed"})
_STRIPPED_SUFFIXES = (".pyi", ".c", ".h")
_STRIPPED_DIRS = frozenset({"__pycache__", "tests", "bin"})


@dataclass(frozen=True, slots=True)
class ArtifactReport:
    directory: Path
    zip_path: Path
    pins: tuple[str, ...]
    unzipped_bytes: int
    zipped_bytes: int
    file_count: int
    py_count: int
    pyc_count: int

    def __str__(self) -> str:
        return "\n".join(
            [
                f"artifact:  {self.directory}",
                f"zip:       {self.zip_path}",
                f"shipped:   {', '.join(self.pins)}",
                f"files:     {self.file_count} ({self.py_count} .py, {self.pyc_count} .pyc)",
                f"unzipped:  {self.unzipped_bytes:,} bytes ({self.unzipped_bytes / 2**20:.2f} MiB)",
                f"zipped:    {self.zipped_bytes:,} bytes ({self.zipped_bytes / 2**20:.2f} MiB)",
            ]
        )


class PackagingError(RuntimeError):
    """The artifact could not be built; the message says what to install or fix."""


def build_function_artifact(
    out_dir: Path = Path("build/function"), *, lambda_root: Path = Path("lambda")
) -> ArtifactReport:
    """Rebuild ``out_dir`` (the future /var/task) and ``<out_dir>.zip`` from scratch."""
    out_dir = out_dir.resolve()
    lambda_root = lambda_root.resolve()
    _refuse_dangerous_target(out_dir, lambda_root)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)

    pins = tuple(f"{name}=={importlib.metadata.version(name)}" for name in SHIPPED_DISTRIBUTIONS)
    _install_dependencies(pins, out_dir)
    _strip(out_dir)
    shutil.copytree(
        lambda_root / "fulfillment",
        out_dir / "fulfillment",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "py.typed"),
    )
    _copy_service_models(out_dir / DATA_DIR_NAME)
    _compile_bytecode(out_dir)
    zip_path = _zip(out_dir, out_dir.with_name(out_dir.name + ".zip"))

    files = [path for path in out_dir.rglob("*") if path.is_file()]
    return ArtifactReport(
        directory=out_dir,
        zip_path=zip_path,
        pins=pins,
        unzipped_bytes=sum(path.stat().st_size for path in files),
        zipped_bytes=zip_path.stat().st_size,
        file_count=len(files),
        py_count=sum(path.suffix == ".py" for path in files),
        pyc_count=sum(path.suffix == ".pyc" for path in files),
    )


def _refuse_dangerous_target(out_dir: Path, lambda_root: Path) -> None:
    # out_dir is deleted before each build: never let that be the sources or an ancestor.
    for keep in (REPO_ROOT, lambda_root, Path.home()):
        if out_dir == keep or out_dir in keep.parents:
            raise PackagingError(f"refusing to build into {out_dir}: it holds {keep}")


def _platform_args() -> list[str]:
    args = [f"--platform={platform}" for platform in PLATFORMS]
    return [
        *args,
        "--implementation=cp",
        f"--python-version={PYTHON_VERSION}",
        "--only-binary=:all:",
        "--no-deps",
    ]


def _pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise PackagingError(f"pip {args[0]} failed:\n{done.stdout}{done.stderr}")


def _canonical(pin: str) -> str:
    name, version = pin.split("==")
    return f"{re.sub(r'[-_.]+', '-', name).lower()}=={version}"


def _cached_pins(cache: Path) -> set[str]:
    cached = set()
    for wheel in cache.glob("*.whl"):
        name, version = wheel.name.split("-")[:2]
        cached.add(_canonical(f"{name}=={version}"))
    return cached


def _install_dependencies(pins: tuple[str, ...], target: Path) -> None:
    # Wheels are downloaded once into the cache; installs from it never touch the network.
    PIP_CACHE.mkdir(parents=True, exist_ok=True)
    cached = _cached_pins(PIP_CACHE)
    missing = [pin for pin in pins if _canonical(pin) not in cached]
    if missing:
        _pip("download", "--dest", str(PIP_CACHE), *_platform_args(), *missing)
    _pip(
        "install",
        "--no-index",
        "--find-links",
        str(PIP_CACHE),
        "--target",
        str(target),
        "--no-compile",
        *_platform_args(),
        *pins,
    )


def _strip(root: Path) -> None:
    for path in sorted(root.rglob("*"), reverse=True):
        if not path.exists():
            continue
        if path.is_dir() and path.name in _STRIPPED_DIRS:
            shutil.rmtree(path)
        elif path.is_file() and (
            path.name in _STRIPPED_NAMES or path.name.endswith(_STRIPPED_SUFFIXES)
        ):
            path.unlink()


def _copy_service_models(data_dir: Path) -> None:
    spec = importlib.util.find_spec("botocore")
    if spec is None or spec.origin is None:
        raise PackagingError("botocore is not installed in the build environment")
    for model in SHIPPED_MODELS:
        source = Path(spec.origin).parent / "data" / model.with_suffix(".json.gz")
        target = data_dir / model
        target.parent.mkdir(parents=True)
        document = json.loads(gzip.decompress(source.read_bytes()))
        metadata = document["metadata"]
        # Current models may name a newer wire protocol first (marketplace-entitlement,
        # marketplace-agreement: smithy-rpc-v2-cbor) that an older runtime botocore cannot
        # speak; every service here also speaks JSON (1.1, or 1.0 for the agreement service),
        # which all botocore releases do.
        if metadata.get("protocol") != "json":
            if "json" not in metadata.get("protocols", []):
                raise PackagingError(f"{model} does not offer the json protocol")
            metadata["protocol"] = "json"
        # Plain .json: botocore releases before 1.32 read no .json.gz from any data path.
        target.write_text(json.dumps(document, separators=(",", ":")))


def _compile_bytecode(root: Path) -> None:
    node = shutil.which("node")
    if node is None:
        raise PackagingError("node (>= 20) is needed to compile 3.13 bytecode with Pyodide")
    if not (REPO_ROOT / "node_modules" / "pyodide" / "package.json").is_file():
        npm = shutil.which("npm")
        if npm is None:
            raise PackagingError("node_modules/pyodide is missing and npm is not installed")
        done = subprocess.run(  # noqa: S603
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise PackagingError(f"npm ci failed (Pyodide is needed):\n{done.stderr}")
    done = subprocess.run(  # noqa: S603
        [node, str(COMPILER), str(root), TASK_ROOT],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise PackagingError(f"bytecode compilation failed:\n{done.stdout}{done.stderr}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    if bytes.fromhex(answer["magic"]) != PYC_MAGIC:
        raise PackagingError(f"Pyodide runs Python {answer['version']}, not {PYTHON_VERSION}")


def _zip(root: Path, zip_path: Path) -> Path:
    # Reproducible: sorted entries, fixed timestamps and modes, so an unchanged build hashes
    # the same and CDK does not upload it again.
    zip_path.unlink(missing_ok=True)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(path.relative_to(root).as_posix(), (1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes(), compresslevel=9)
    return zip_path


def main() -> None:
    os.chdir(REPO_ROOT)
    print(build_function_artifact())


if __name__ == "__main__":
    main()
