"""`make bench`: run the sections, print their tables, write them into the docs.

python -m bench                  # every section
python -m bench --only load      # one section (repeatable)
python -m bench --no-write       # print only; leave docs/ as it is
"""

from __future__ import annotations

import argparse
import sys

from bench import Section, calls, coldstart, load, overhead, size
from bench.report import write_between_markers

# In the order they run; issue 7's cold start, warm overhead, AWS calls and size go here too.
SECTIONS: tuple[Section, ...] = (
    size.SECTION,
    calls.SECTION,
    overhead.SECTION,
    coldstart.SECTION,
    load.SECTION,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        action="append",
        choices=[section.name for section in SECTIONS],
        help="run only this section (repeatable); "
        + "; ".join(f"{s.name}: {s.help}" for s in SECTIONS).replace("%", "%%"),
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print the tables only; leave docs/ unchanged"
    )
    for section in SECTIONS:
        section.add_arguments(parser)
    args = parser.parse_args(argv)

    failed = False
    for section in SECTIONS:
        if args.only and section.name not in args.only:
            continue
        report = section.run(args)
        print(f"\n## {section.name}\n\n{report.markdown}\n", flush=True)
        if report.problems:
            failed = True
            print(
                f"bench: {section.name}: not written to {report.document.name}: "
                + "; ".join(report.problems),
                file=sys.stderr,
            )
        elif not args.no_write:
            done = write_between_markers(
                report.document,
                report.marker,
                report.markdown,
                title=report.document_title,
                heading=report.heading,
            )
            print(f"bench: {section.name}: {done}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
