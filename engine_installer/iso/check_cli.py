"""engine-iso check FILE: verify an installer ISO before it is written or shipped.

Structure (ISO9660, not truncated), the payload manifest, and every file's SHA-256 against
/SHA256SUMS (medium_check.check_iso); the first bad file is named and the exit code is
non-zero. Also reports whether the image carries the hybrid MBR it needs to boot from USB.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine_installer.base.errors import UserError
from engine_installer.base.progress import ProgressEvent
from engine_installer.ondisk.medium import check_iso, has_hybrid_mbr, manifest_from_iso


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("iso", type=Path, metavar="FILE", help="the installer ISO to verify")
    parser.add_argument("--quiet", action="store_true", help="print only the verdict")


def run(args: argparse.Namespace) -> int:
    path: Path = args.iso
    last = -1

    def progress(event: ProgressEvent) -> None:
        nonlocal last
        percent = int(100 * event.fraction)
        if not args.quiet and sys.stderr.isatty() and percent != last:
            last = percent
            print(f"\rchecking {path.name}: {percent:3d}%", end="", file=sys.stderr, flush=True)

    try:
        check_iso(path, progress)
    finally:
        if last >= 0:
            print(file=sys.stderr)
    if not has_hybrid_mbr(path):
        raise UserError(
            f"{path}: files are intact but there is no hybrid MBR, so it boots only from a "
            "DVD; rebuild it with engine-iso build"
        )
    manifest = manifest_from_iso(path)
    print(f"{path}: OK, {manifest.get('product', 'Engine')} {manifest.get('version', '?')} "
          f"(build {manifest.get('build', '?')}); every file matches SHA256SUMS")  # fmt: skip
    return 0
