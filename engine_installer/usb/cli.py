"""engine-usb command line (issue 6)."""

from __future__ import annotations

import sys

from ..errors import cli_entry


@cli_entry
def main(argv: list[str] | None = None) -> int:
    print("engine-usb: not yet implemented", file=sys.stderr)
    return 1
