"""Run code in a fresh interpreter, as a new Lambda container runs the function's module."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]


def run_fresh(code: str, *args: str, **environment: str) -> subprocess.CompletedProcess[str]:
    """``python -c code *args`` with ``lambda/`` and the repository on the path; fails the
    test with the child's stderr when it exits non-zero."""
    path = os.pathsep.join([str(REPOSITORY / "lambda"), str(REPOSITORY)])
    env = {**os.environ, "PYTHONPATH": path, **environment}
    done = subprocess.run(  # noqa: S603 - this interpreter, the test's own code
        [sys.executable, "-c", code, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done
