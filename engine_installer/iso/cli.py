"""engine-iso command line: sample-payload (issue 2), build and check (issue 4)."""

from __future__ import annotations

import sys

from ..errors import cli_entry


@cli_entry
def main(argv: list[str] | None = None) -> int:
    print("engine-iso: not yet implemented", file=sys.stderr)
    return 1
