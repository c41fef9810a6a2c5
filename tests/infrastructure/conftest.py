"""One function artifact per test session, built exactly as `make build` builds it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from infra import packaging

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")


@pytest.fixture(scope="session")
def artifact_report(tmp_path_factory: pytest.TempPathFactory) -> packaging.ArtifactReport:
    built = packaging.build_function_artifact(
        tmp_path_factory.mktemp("artifact") / "function",
        lambda_root=packaging.REPO_ROOT / "lambda",
    )
    print(f"\n{built}")
    return built


@pytest.fixture(scope="session")
def function_artifact(artifact_report: packaging.ArtifactReport) -> Path:
    return artifact_report.directory
