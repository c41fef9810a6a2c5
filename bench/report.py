"""Figures into words: percentiles, markdown tables, the machine, and the document sections."""

from __future__ import annotations

import json
import math
import os
import platform
import re
import time
from collections.abc import Sequence
from pathlib import Path


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile (0 < p <= 100) of a non-empty sample."""
    if not values:
        raise ValueError("no values")
    if not 0 < p <= 100:
        raise ValueError("p must be in (0, 100]")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> str:
    """One line about where the figures were measured: CPUs, model, memory, OS, Python."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    model = platform.processor() or platform.machine()
    memory = ""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
        if found:
            model = found.group(1).strip()
        meminfo = Path("/proc/meminfo").read_text()
        total = re.search(r"^MemTotal:\s*(\d+) kB", meminfo, re.MULTILINE)
        if total:
            memory = f", {int(total.group(1)) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    return (
        f"nproc {usable} ({model}){memory}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def speed_reference() -> float:
    """Milliseconds a fixed pure-Python workload takes here (min of 5): how fast this machine
    ran when the figures were taken. This VM's speed changes over minutes at the same load
    average, so two runs compare fairly only at similar references."""
    document = {"items": [{"id": n, "name": f"item-{n}", "tags": ["a", "b"]} for n in range(200)]}
    best = math.inf
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(20):
            json.loads(json.dumps(document))
        best = min(best, time.perf_counter() - started)
    return best * 1000


def write_between_markers(
    document: Path, marker: str, content: str, *, title: str, heading: str
) -> str:
    """Put ``content`` between the marker lines of ``document``; what was done, in words.

    Replaces what the markers enclose; without markers, appends ``heading`` and the marked
    section at the end; without the file, creates it with ``title``. Markers that are
    duplicated or out of order raise ValueError rather than lose text.
    """
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    block = f"{start}\n{content.strip()}\n{end}"
    if not document.exists():
        document.parent.mkdir(parents=True, exist_ok=True)
        document.write_text(f"# {title}\n\n{heading}\n\n{block}\n", encoding="utf-8")
        return f"created {document} with a {heading!r} section"
    text = document.read_text(encoding="utf-8")
    starts, ends = text.count(start), text.count(end)
    if starts == 0 and ends == 0:
        document.write_text(f"{text.rstrip()}\n\n{heading}\n\n{block}\n", encoding="utf-8")
        return f"appended a {heading!r} section to {document} (it had no {marker} markers)"
    if starts != 1 or ends != 1 or text.index(start) > text.index(end):
        raise ValueError(f"{document}: expected one {start} line followed by one {end} line")
    before, rest = text.split(start, 1)
    _, after = rest.split(end, 1)
    document.write_text(before + block + after, encoding="utf-8")
    return f"updated the {marker} section of {document}"
