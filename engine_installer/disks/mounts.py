"""Temporary mounts in a private temp dir, always unmounted (even when the body fails)."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from engine_installer.base.errors import UserError


def umount(target: Path) -> None:
    for _attempt in range(10):
        proc = subprocess.run(["umount", str(target)], capture_output=True, text=True)
        if proc.returncode == 0:
            return
        time.sleep(0.2)  # a short-lived opener (udev, blkid) may still hold it
    # Last resort so no stale mount outlives the run; the kernel finishes it when idle.
    subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)


@contextlib.contextmanager
def mounted(
    device: str | Path, fstype: str | None = None, readonly: bool = False, options: str = ""
) -> Iterator[Path]:
    """Mount device in a fresh temp dir, yield the dir, unmount and remove it afterwards."""
    target = Path(tempfile.mkdtemp(prefix="engine-mnt-"))
    opts = ",".join(o for o in ("ro" if readonly else "", options) if o)
    cmd = ["mount"] + (["-t", fstype] if fstype else []) + (["-o", opts] if opts else [])
    proc = subprocess.run(cmd + [str(device), str(target)], capture_output=True, text=True)
    if proc.returncode != 0:
        target.rmdir()
        raise UserError(f"cannot mount {device}: {proc.stderr.strip()}; check the disk")
    try:
        yield target
    finally:
        umount(target)
        with contextlib.suppress(OSError):
            target.rmdir()
