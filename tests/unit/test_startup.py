"""Every entry point leaves what it imported to the garbage collector's permanent generation.

Without it, the collections triggered while the first request builds its boto3 client walk
every imported module, class and function: ~15 ms of each cold start on CPython 3.11
(docs/performance.md). Checked in fresh interpreters, as a new Lambda container imports.
"""

from __future__ import annotations

import pytest

from fulfillment.settings import FUNCTION_ENVIRONMENT_KEYS
from tests.fresh_process import run_fresh

ENTRY_MODULES = sorted(handler.rsplit(".", 1)[0] for handler in FUNCTION_ENVIRONMENT_KEYS)
_PROBE = (
    "import gc, importlib, sys; importlib.import_module(sys.argv[1]); print(gc.get_freeze_count())"
)


@pytest.mark.parametrize("module", ENTRY_MODULES)
def test_importing_an_entry_point_freezes_what_it_imported(module: str) -> None:
    done = run_fresh(_PROBE, module)
    # boto3, Powertools and the package: thousands of objects, not a handful
    assert int(done.stdout.split()[-1]) > 10_000
