"""Every entry point leaves what it imported to the garbage collector's permanent generation.

Without it, the collections triggered while the first request builds its boto3 client walk
every imported module, class and function: ~15 ms of each cold start on CPython 3.11
(docs/performance.md). Checked in fresh interpreters, as a new Lambda container imports.
"""

from __future__ import annotations

import pytest

from tests.fresh_process import run_fresh
from tests.functions import ENVIRONMENT_KEYS as FUNCTION_ENVIRONMENT_KEYS

ENTRY_MODULES = sorted(handler.rsplit(".", 1)[0] for handler in FUNCTION_ENVIRONMENT_KEYS)
# The handler and the module's own objects are frozen too (the freeze runs last), and what
# the garbage collector still tracks afterwards is a small remainder, not the import.
_PROBE = """
import gc, importlib, sys
module = importlib.import_module(sys.argv[1])
tracked = {id(o) for o in gc.get_objects()}
print(gc.get_freeze_count(), len(tracked), id(module.lambda_handler) in tracked,
      id(module.__dict__) in tracked)
"""


@pytest.mark.parametrize("module", ENTRY_MODULES)
def test_importing_an_entry_point_freezes_what_it_imported(module: str) -> None:
    frozen, tracked, handler_tracked, namespace_tracked = run_fresh(_PROBE, module).stdout.split()
    # boto3, Powertools and the package: tens of thousands of objects frozen
    assert int(frozen) > 10_000
    # including the entry module's own namespace and handler, frozen after everything else
    assert handler_tracked == "False" and namespace_tracked == "False"
    assert int(tracked) < int(frozen) // 10
