"""engine-iso check FILE: verify an installer ISO before it is written or shipped.

Structure (ISO9660, not truncated), the payload manifest, and every file's SHA-256 against
/SHA256SUMS (medium_check.check_iso); the first bad file is named and the exit code is
non-zero. Also reports whether the image carries the hybrid MBR it needs to boot from USB, and
whether it is signed as an update kit (with --trust CERT: by one of those certificates).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine_installer.base.errors import UserError
from engine_installer.base.i18n import _
from engine_installer.base.progress import ProgressEvent
from engine_installer.ondisk.medium import check_iso, has_hybrid_mbr, open_medium
from engine_installer.ondisk.signature import signature_signer, verify_sums_signature


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "iso", type=Path, metavar="FILE", help=_("the installer ISO (or mounted medium) to verify")
    )
    parser.add_argument("--quiet", action="store_true", help=_("print only the verdict"))
    parser.add_argument("--trust", type=Path, action="append", default=[], metavar="CERT",
                        help=_("require a kit signature by this certificate (PEM; "
                               "repeatable)"))  # fmt: skip


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
    medium = open_medium(path)
    manifest = medium.manifest
    print(f"{path}: OK, {manifest.label()}; every file matches SHA256SUMS")
    if args.trust:
        trusted = {str(cert): _read_cert(cert) for cert in args.trust}
        signer = verify_sums_signature(medium.sums, medium.signature, trusted, path.name)
        print(f"{path}: signed by {signer}, a trusted signer: an update kit")
    elif medium.signature:
        signer = signature_signer(medium.sums, medium.signature, path.name)
        print(f"{path}: signed by {signer} (the signature matches; --trust CERT checks who)")
    else:
        print(f"{path}: not signed: it installs from a boot medium, not as an update kit")
    return 0


def _read_cert(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise UserError(f"--trust {path} cannot be read ({err.strerror}): check the path") from None
