"""Temporary mounts in a private temp dir, always unmounted (even when the body fails).

The temp dirs carry the mounting process's id (engine-mnt-<pid>-...), so a later installer can
tell the leftovers of one that was killed (SIGKILL, a crash) from the mounts of one that is still
running on another console, and clean them up instead of calling the disk "in use".
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from engine_installer.base.errors import UserError
from engine_installer.machine.ownership import MOUNT_PREFIX, alive, owner_pid


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
    target = Path(tempfile.mkdtemp(prefix=f"{MOUNT_PREFIX}{os.getpid()}-"))
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


def clean_stale_mounts() -> list[str]:
    """Unmount what installers that no longer run left mounted; returns what was cleaned."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    cleaned = []
    # Innermost first: a scratch image mounted inside another temp dir goes before its parent.
    points = sorted(
        (line.split()[4].replace("\\040", " ") for line in lines if len(line.split()) > 4),
        key=len,
        reverse=True,
    )
    for point in points:
        path = Path(point)
        owner = owner_pid(path)
        if owner is None or alive(owner):
            continue
        umount(path)
        with contextlib.suppress(OSError):
            path.rmdir()
        cleaned.append(point)
    return cleaned


def mount_point_of(device: str) -> Path | None:
    """Where device's filesystem is mounted read-write as a whole (its root), or None."""
    try:
        rdev = os.stat(device).st_rdev
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    wanted = f"{os.major(rdev)}:{os.minor(rdev)}"
    for line in lines:
        fields = line.split()
        whole = len(fields) > 5 and fields[2] == wanted and fields[3] == "/"
        if whole and "rw" in fields[5].split(","):
            return Path(fields[4].replace("\\040", " "))
    return None


@contextlib.contextmanager
def mounted_rw(device: str, fstype: str) -> Iterator[Path]:
    """The filesystem on device, read-write: where the running system has it mounted (an
    Engine's storage partition), else in a temporary mount for the duration."""
    existing = mount_point_of(device)
    if existing is not None:
        yield existing
        return
    with mounted(device, fstype) as target:
        yield target
