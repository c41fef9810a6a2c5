"""Size: the zipped function code (a fresh ``infra.packaging`` build) plus layers (none).

The peak RSS of each cold-start process is in the cold-start section, where it is measured.
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import tempfile
import zipfile
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from bench import REPO_ROOT, Report, Section
from bench.report import machine, markdown_table
from infra.packaging import ArtifactReport, build_function_artifact

DOCUMENT = REPO_ROOT / "docs" / "performance.md"
# Lambda's limits: 50 MB zipped for a direct upload, 250 MB unzipped with layers.
ZIP_LIMIT = 50 * 10**6
UNZIPPED_LIMIT = 250 * 10**6


@cache
def fresh_artifact() -> ArtifactReport:
    """The artifact built from the current sources into a temporary directory (once per run):
    what ``make build`` would ship now, without touching build/function."""
    root = Path(tempfile.mkdtemp(prefix="bench-artifact-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return build_function_artifact(root / "function", lambda_root=REPO_ROOT / "lambda")


def _largest(zip_path: Path, count: int = 5) -> list[tuple[str, int]]:
    totals: dict[str, int] = {}
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            top = info.filename.split("/", 1)[0]
            totals[top] = totals.get(top, 0) + info.compress_size
    return sorted(totals.items(), key=lambda item: -item[1])[:count]


def run(args: argparse.Namespace) -> Report:
    artifact = fresh_artifact()
    rows = [
        [
            "function code (zip)",
            f"{artifact.zipped_bytes:,}",
            f"{artifact.zipped_bytes / 2**20:.2f}",
            f"{artifact.unzipped_bytes / 2**20:.2f}",
            f"{artifact.file_count} ({artifact.py_count} .py, {artifact.pyc_count} .pyc)",
        ],
        ["layers", "0", "0.00", "0.00", "none (the runtime's boto3)"],
    ]
    parts = ", ".join(
        f"`{name}` {size / 2**20:.2f} MiB" for name, size in _largest(artifact.zip_path)
    )
    markdown = "\n".join(
        [
            f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}. No budget in "
            f"issue 7; Lambda's limits are {ZIP_LIMIT / 10**6:.0f} MB zipped and "
            f"{UNZIPPED_LIMIT / 10**6:.0f} MB unzipped: "
            + ("within." if artifact.zipped_bytes < ZIP_LIMIT else "**exceeded**."),
            "",
            markdown_table(["part", "zipped bytes", "zipped MiB", "unzipped MiB", "files"], rows),
            "",
            f"Largest zipped parts: {parts}. Peak RSS: see the cold-start table.",
        ]
    )
    return Report(
        markdown=markdown,
        document=DOCUMENT,
        document_title="Performance",
        heading="## Size",
        marker="size",
    )


SECTION = Section(
    name="size",
    help="zipped function code plus layers (a fresh build)",
    add_arguments=lambda parser: None,
    run=run,
)


def section() -> str:
    return run(argparse.Namespace()).markdown
