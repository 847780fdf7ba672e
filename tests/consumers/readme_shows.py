"""Fails unless a binding's README shows a consumer's file (or the lines of it from the
first matching FIRST to the next matching LAST, both regular expressions) verbatim,
indentation removed, so that the README's first section cannot drift from what
tests/consumers/ builds.

    python3 tests/consumers/readme_shows.py README FILE [FIRST LAST]
"""

import re
import sys
import textwrap

readme_path, file_path, *bounds = sys.argv[1:]
lines = open(file_path, encoding="utf-8").read().splitlines(keepends=True)
if bounds:
    first, last = (re.compile(b) for b in bounds)
    start = next(i for i, line in enumerate(lines) if first.search(line))
    end = next(i for i in range(start, len(lines)) if last.search(lines[i]))
    lines = lines[start : end + 1]
excerpt = textwrap.dedent("".join(lines))
readme = open(readme_path, encoding="utf-8").read()
if "\n" + excerpt not in readme:
    sys.exit(
        f"FAILED: {readme_path} does not show these lines of {file_path} as they are:\n"
        + textwrap.indent(excerpt, "    ")
    )
