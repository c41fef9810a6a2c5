"""The deployable artifact: 3.13 bytecode for everything shipped, nothing the runtime has,
and a Marketplace model that knows the current ResolveCustomer fields.

The artifact is built once per module (about 7 s with a warm pip cache; the first build ever
downloads four wheels into build/pip-cache).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.loaders
import botocore.session
import pytest
from botocore.awsrequest import AWSResponse

from infra import packaging
from infra.packaging import DATA_DIR_NAME, DATA_PATH_ENV, PYC_MAGIC, PYC_TAG, ArtifactReport
from tests.events import form_post, rest_event

REPO_ROOT = Path(__file__).resolve().parents[2]
# What the python3.13 Lambda runtime already has, compiled: never ship these.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "urllib3", "jmespath", "dateutil", "six")
UNCHECKED_HASH_FLAGS = 0b01  # hash-based pyc, source never checked
EM_AARCH64 = 183
METERING = Path("meteringmarketplace", "2016-01-14")
RESOLVE_ANSWER = {
    "CustomerIdentifier": "",
    "CustomerAWSAccountId": "123456789012",
    "ProductCode": "prod-packaging1",
    "LicenseArn": "arn:aws:license-manager::123456789012:license:l-0123456789abcdef",
    "Metadata": {"AgreementId": "agmt-0123456789abcdef"},
}


@pytest.fixture(scope="module")
def report(artifact_report: ArtifactReport) -> ArtifactReport:
    return artifact_report


@pytest.fixture(scope="module")
def artifact(report: ArtifactReport) -> Path:
    return report.directory


def _files(root: Path, pattern: str) -> list[Path]:
    return sorted(root.rglob(pattern))


def _pyc_for(source: Path) -> Path:
    return source.parent / "__pycache__" / f"{source.stem}.{PYC_TAG}.pyc"


def test_every_module_has_unchecked_hash_313_bytecode(artifact: Path) -> None:
    sources = _files(artifact, "*.py")
    assert len(sources) > 300  # fulfillment + Powertools + MarkupSafe + typing_extensions
    for source in sources:
        header = _pyc_for(source).read_bytes()[:16]
        assert header[:4] == PYC_MAGIC, source
        assert int.from_bytes(header[4:8], "little") == UNCHECKED_HASH_FLAGS, source
    # Sources stay beside their bytecode, for tracebacks.
    assert len(_files(artifact, "*.pyc")) == len(sources)


def test_no_bytecode_for_other_versions_and_nothing_the_runtime_has(artifact: Path) -> None:
    foreign = [p for p in _files(artifact, "*.pyc") if not p.name.endswith(f".{PYC_TAG}.pyc")]
    assert foreign == []
    modules = {path.name.removesuffix(".py") for path in artifact.iterdir()}
    distributions = {path.name.split("-")[0].lower() for path in artifact.glob("*.dist-info")}
    assert modules.isdisjoint(RUNTIME_PACKAGES)
    assert distributions == {"aws_lambda_powertools", "markupsafe", "typing_extensions"}
    assert {"fulfillment", *distributions} <= modules


def test_native_modules_are_cpython_313_for_aarch64(artifact: Path) -> None:
    native = _files(artifact, "*.so")
    # MarkupSafe's speedups: proof that the platform wheel, not a pure fallback, was installed.
    assert [p.relative_to(artifact).as_posix() for p in native] == [
        "markupsafe/_speedups.cpython-313-aarch64-linux-gnu.so"
    ]
    for library in native:
        header = library.read_bytes()[:20]
        assert header[:4] == b"\x7fELF" and header[4] == 2  # 64-bit ELF
        assert int.from_bytes(header[18:20], "little") == EM_AARCH64


def test_artifact_holds_the_handler_and_current_model(artifact: Path) -> None:
    assert (artifact / "fulfillment" / "api.py").is_file()  # handler fulfillment.api...
    model = json.loads((artifact / DATA_DIR_NAME / METERING / "service-2.json").read_text())
    result = model["shapes"]["ResolveCustomerResult"]["members"]
    assert {"LicenseArn", "Metadata"} <= set(result)
    assert "AgreementId" in model["shapes"][result["Metadata"]["shape"]]["members"]
    # Any botocore since the runtime's launch speaks this protocol; a model needing a newer
    # protocol would not load in an older runtime.
    assert model["metadata"]["protocol"] == "json"
    assert {"AWS_DATA_PATH": f"/var/task/{DATA_DIR_NAME}"} == DATA_PATH_ENV
    # The lifecycle function filters GetEntitlements by license, which older models lack.
    entitlement = json.loads(
        (
            artifact / DATA_DIR_NAME / "marketplace-entitlement" / "2017-01-11" / "service-2.json"
        ).read_text()
    )
    assert "LICENSE_ARN" in entitlement["shapes"]["GetEntitlementFilterName"]["enum"]
    assert entitlement["metadata"]["protocol"] == "json"
    # and reads free trials from the agreement's terms, in JSON (1.0), not CBOR.
    agreement = json.loads(
        (
            artifact / DATA_DIR_NAME / "marketplace-agreement" / "2020-03-01" / "service-2.json"
        ).read_text()
    )
    assert "freeTrialPricingTerm" in agreement["shapes"]["AcceptedTerm"]["members"]
    assert agreement["metadata"]["protocol"] == "json"


def test_zip_matches_the_directory_and_is_small(report: ArtifactReport) -> None:
    print(f"zipped artifact: {report.zipped_bytes:,} bytes")
    assert report.zipped_bytes < 5 * 2**20
    on_disk = sorted(
        p.relative_to(report.directory).as_posix()
        for p in report.directory.rglob("*")
        if p.is_file()
    )
    with zipfile.ZipFile(report.zip_path) as archive:
        assert archive.testzip() is None
        assert sorted(archive.namelist()) == on_disk
    assert report.file_count == len(on_disk)


def test_rebuild_is_reproducible_and_offline(
    report: ArtifactReport, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a warm wheel cache (the fixture's build filled it)
    first_zip = report.zip_path.read_bytes()
    pip_calls: list[tuple[str, ...]] = []
    real_pip = packaging._pip

    def recording_pip(*args: str) -> None:
        pip_calls.append(args)
        real_pip(*args)

    monkeypatch.setattr(packaging, "_pip", recording_pip)
    # When the same directory is built again
    again = packaging.build_function_artifact(report.directory, lambda_root=REPO_ROOT / "lambda")
    # Then pip only installed from the cache, and the zip is byte for byte the same
    assert [call[0] for call in pip_calls] == ["install"]
    assert "--no-index" in pip_calls[0]
    assert again.zip_path.read_bytes() == first_zip


# --- the cold path, run the way the runtime will: its own boto3, our artifact, nothing else --


_COLD_PATH = r"""
import json, sys
artifact, runtime = sys.argv[1:3]
sys.path[:0] = [artifact, runtime]
import fulfillment.api as api
from botocore.awsrequest import AWSResponse
from fulfillment.core import aws

answers = json.loads(sys.stdin.read())


class Raw:
    def __init__(self, body):
        self.body = body

    def stream(self, **kwargs):
        yield self.body


def offline(request, **kwargs):
    target = request.headers["X-Amz-Target"].decode()
    body = answers.get(target, "{}").encode()
    return AWSResponse(request.url, 200, {"x-amzn-requestid": "r"}, Raw(body))


aws.session().events.register("before-send", offline)


class Context:
    function_name = "fulfillment"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:fulfillment"
    aws_request_id = "cold-path"

    def get_remaining_time_in_millis(self):
        return 20_000


events = answers.pop("events")
statuses = [api.lambda_handler(event, Context())["statusCode"] for event in events]
loader = aws.session()._session.get_component("data_loader")
_, model_path = loader.load_data_with_path("meteringmarketplace/2016-01-14/service-2")
print(json.dumps({
    "statuses": statuses,
    "recovery_clients": aws.recovery_sqs.cache_info().currsize,
    "metering_model": model_path,
    "modules": {name: getattr(m, "__file__", None) for name, m in list(sys.modules.items())},
}))
"""


@pytest.fixture(scope="module")
def runtime_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stands in for the runtime's site-packages: boto3 and its dependencies, nothing else."""
    site = tmp_path_factory.mktemp("runtime-site-packages")
    for name in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None, name
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (site / source.name).symlink_to(source)
    return site


@pytest.fixture(scope="module")
def cold_path(artifact: Path, runtime_site: Path) -> dict[str, Any]:
    answers = {
        "AWSMPMeteringService.ResolveCustomer": json.dumps(RESOLVE_ANSWER),
        "events": [rest_event(method="GET", body=None, content_type=None), form_post("t0k+en/=")],
    }
    environment = {
        key: value
        for key, value in os.environ.items()
        if key.startswith(("AWS_", "POWERTOOLS_")) or key in {"PATH", "HOME", "LANG"}
    }
    environment.update(
        {
            "CUSTOMERS_TABLE_NAME": "customers",
            "IDEMPOTENCY_TABLE_NAME": "idempotency",
            "PRODUCT_CODES": RESOLVE_ANSWER["ProductCode"],
            "REGISTRATION_URL": "https://app.example.com/signup",
            "RECOVERY_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/recovery",
            "AWS_DATA_PATH": str(artifact / DATA_DIR_NAME),
        }
    )
    done = subprocess.run(  # noqa: S603
        # -I -S: no site-packages, no PYTHONPATH; -B: never write 3.11 bytecode into the artifact
        [sys.executable, "-I", "-S", "-B", "-c", _COLD_PATH, str(artifact), str(runtime_site)],
        input=json.dumps(answers),
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_cold_path_runs_from_the_artifact_and_the_runtime_alone(
    cold_path: dict[str, Any], artifact: Path, runtime_site: Path
) -> None:
    # The landing page (MarkupSafe) and a whole registration (Powertools idempotency, both clients)
    assert cold_path["statuses"] == [200, 303]
    # The recovery queue's SQS client is built only when a registration is parked
    assert cold_path["recovery_clients"] == 0
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    outside = {
        name: file
        for name, file in cold_path["modules"].items()
        if file is not None
        and not Path(file).is_relative_to(artifact)
        and not Path(file).is_relative_to(runtime_site)
        and not Path(file).resolve().is_relative_to(stdlib)
    }
    assert outside == {}
    assert {"markupsafe", "typing_extensions"} <= set(cold_path["modules"])
    assert "jinja2" not in cold_path["modules"]
    # The function's session takes the metering model from the artifact (AWS_DATA_PATH)
    assert Path(cold_path["metering_model"]).is_relative_to(artifact / DATA_DIR_NAME)


def test_every_module_on_the_cold_path_ships_313_bytecode(
    cold_path: dict[str, Any], artifact: Path
) -> None:
    shipped = {
        name: Path(file)
        for name, file in cold_path["modules"].items()
        if file is not None and Path(file).is_relative_to(artifact)
    }
    assert len(shipped) > 50
    missing = [
        name
        for name, file in shipped.items()
        if file.suffix == ".py" and not _pyc_for(file).is_file()
    ]
    assert missing == []
    assert all(file.suffix in {".py", ".so"} for file in shipped.values())


# --- (a) the shipped model wins over an older bundled one ----------------------------------


@pytest.fixture
def old_bundled_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A botocore data directory like an older runtime's: ResolveCustomer without the new
    fields, the endpoint rule set and the shared files as bundled."""
    real = Path(botocore.loaders.Loader.BUILTIN_DATA_PATH)
    fake = tmp_path / "bundled"
    for shared in real.glob("*.json"):
        (fake / shared.name).parent.mkdir(parents=True, exist_ok=True)
        (fake / shared.name).symlink_to(shared)
    (fake / METERING).mkdir(parents=True)
    shutil.copy(real / METERING / "endpoint-rule-set-1.json.gz", fake / METERING)
    model = json.loads(gzip.decompress((real / METERING / "service-2.json.gz").read_bytes()))
    members = model["shapes"]["ResolveCustomerResult"]["members"]
    del members["LicenseArn"], members["Metadata"]
    del model["shapes"]["Metadata"]
    (fake / METERING / "service-2.json").write_text(json.dumps(model))
    monkeypatch.setattr(botocore.loaders.Loader, "BUILTIN_DATA_PATH", str(fake))
    monkeypatch.setattr(botocore.loaders.Loader, "CUSTOMER_DATA_PATH", str(tmp_path / "none"))
    monkeypatch.delenv("AWS_DATA_PATH", raising=False)
    return fake


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def _resolve_customer() -> tuple[dict[str, Any], list[str], Any]:
    """ResolveCustomer through a fresh botocore session, answered with RESOLVE_ANSWER's JSON."""
    session = botocore.session.get_session()
    client = session.create_client(
        "meteringmarketplace",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    urls: list[str] = []

    def answer(request: Any, **_: Any) -> AWSResponse:
        urls.append(request.url)
        body = json.dumps(RESOLVE_ANSWER).encode()
        return AWSResponse(request.url, 200, {"x-amzn-requestid": "r"}, _Raw(body))

    client.meta.events.register("before-send", answer)
    result = client.resolve_customer(RegistrationToken="t0k+en/=")
    return result, urls, session.get_component("data_loader")


def test_shipped_model_beats_an_older_bundled_one(
    artifact: Path, old_bundled_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a runtime whose bundled model predates LicenseArn and Metadata.AgreementId
    old, _, _ = _resolve_customer()
    assert "LicenseArn" not in old and "Metadata" not in old  # what the fix is for
    # When the function's environment names the artifact's data directory (its /var/task)
    data_path = DATA_PATH_ENV["AWS_DATA_PATH"].replace("/var/task", str(artifact), 1)
    monkeypatch.setenv("AWS_DATA_PATH", data_path)
    new, urls, loader = _resolve_customer()
    # Then the new fields come through
    assert new["LicenseArn"] == RESOLVE_ANSWER["LicenseArn"]
    assert new["Metadata"]["AgreementId"] == "agmt-0123456789abcdef"
    # And only the service model came from the artifact: endpoints are still the bundled ones
    _, model_path = loader.load_data_with_path(str(METERING / "service-2"))
    _, rules_path = loader.load_data_with_path(str(METERING / "endpoint-rule-set-1"))
    assert Path(model_path).is_relative_to(artifact)
    assert Path(rules_path).is_relative_to(old_bundled_data)
    assert urls == ["https://metering.marketplace.us-east-1.amazonaws.com/"]
