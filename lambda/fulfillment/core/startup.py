"""What every entry module does once its imports are done."""

from __future__ import annotations

import gc


def imports_done() -> None:
    """Take everything imported so far out of the garbage collector's sight (``gc.freeze``).

    Modules, classes and functions live as long as the execution environment, yet every full
    collection walks them again: on CPython 3.11 the collections triggered while the first
    request builds its boto3 client cost ~15 ms of the cold start once Powertools and this
    package are loaded (docs/performance.md). Frozen objects are never collected, which these
    would not be anyway.
    """
    gc.freeze()
