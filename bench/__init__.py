"""`make bench`: measurements that are reported, never asserted like a test.

Each section measures one thing and hands back a Report: a markdown table for the terminal and
for the document section it owns (between ``<!-- <marker>:start -->`` and
``<!-- <marker>:end -->``). A section whose own checks fail (figures that cannot be trusted, or
a cap that was hit) reports its problems, leaves the document alone and makes the run fail.

To add a section: a module with a ``SECTION = Section(...)`` and its entry in
``bench.__main__.SECTIONS``; ``python -m bench --only <name>`` then runs it alone.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Report:
    """What a section measured: markdown for the terminal and its document section."""

    markdown: str
    # The document, its title (used only when the file does not exist yet), the heading put
    # above the markers when the document has none, and the marker name.
    document: Path
    document_title: str
    heading: str
    marker: str
    # Empty when the figures can be published; otherwise why not.
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Section:
    """One part of the benchmark: its command-line options and how to run it."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], Report]
