"""How `make bench` puts its figures into the docs, and its percentiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.report import markdown_table, percentile, write_between_markers

START, END = "<!-- load-run:start -->", "<!-- load-run:end -->"


def write(document: Path, content: str) -> str:
    return write_between_markers(
        document, "load-run", content, title="Reliability", heading="## Load run"
    )


def test_replaces_only_what_the_markers_enclose(tmp_path: Path) -> None:
    document = tmp_path / "reliability.md"
    document.write_text(f"# Reliability\n\nfaults table\n\n{START}\nold figures\n{END}\n\nafter\n")

    write(document, "new figures\n")

    assert document.read_text() == (
        f"# Reliability\n\nfaults table\n\n{START}\nnew figures\n{END}\n\nafter\n"
    )


def test_appends_a_section_when_the_document_has_no_markers(tmp_path: Path) -> None:
    document = tmp_path / "reliability.md"
    document.write_text("# Reliability\n\nfaults table\n")

    done = write(document, "figures")

    assert document.read_text() == (
        f"# Reliability\n\nfaults table\n\n## Load run\n\n{START}\nfigures\n{END}\n"
    )
    assert "appended" in done


def test_creates_the_document_when_missing(tmp_path: Path) -> None:
    document = tmp_path / "docs" / "reliability.md"

    write(document, "figures")

    assert document.read_text() == f"# Reliability\n\n## Load run\n\n{START}\nfigures\n{END}\n"
    # And a second run replaces rather than appends
    write(document, "newer")
    assert document.read_text().count(START) == 1
    assert "newer" in document.read_text() and "figures\n" not in document.read_text()


@pytest.mark.parametrize(
    "text",
    [f"{START}\nonly a start\n", f"{END}\n{START}\n", f"{START}\n{END}\n{START}\n{END}\n"],
)
def test_broken_markers_are_refused_and_the_document_is_left_alone(
    tmp_path: Path, text: str
) -> None:
    document = tmp_path / "reliability.md"
    document.write_text(text)

    with pytest.raises(ValueError, match="load-run"):
        write(document, "figures")
    assert document.read_text() == text


def test_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]

    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([3.0], 99) == 3.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_markdown_table() -> None:
    assert markdown_table(["a", "b"], [[1, "x"]]) == "| a | b |\n|---|---|\n| 1 | x |"
