"""Temporary mounts in a private temp dir, always unmounted (even when the body fails).

The temp dirs carry the mounting process's id (machine/ownership.py), so a later installer can
tell the leftovers of one that was killed (SIGKILL, a crash) from the mounts of one that is still
running on another console and clean them up, and a run can release everything of its own on
any exit path (release_own), even when a signal cut a cleanup short.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from engine_installer.base.errors import UserError
from engine_installer.machine.ownership import MOUNT_PREFIX, alive, own_prefix, owner_pid


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
    target = Path(tempfile.mkdtemp(prefix=own_prefix(MOUNT_PREFIX)))
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


def _mount_points() -> list[str]:
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    # Innermost first: a scratch image mounted inside another temp dir goes before its parent.
    points = [line.split()[4].replace("\\040", " ") for line in lines if len(line.split()) > 4]
    return sorted(points, key=len, reverse=True)


def _release(owned: Callable[[int], bool]) -> list[str]:
    """Unmount the mounts and remove the temp files of installer processes owned() picks."""
    released = []
    for point in _mount_points():
        owner = owner_pid(point)
        if owner is not None and owned(owner):
            umount(Path(point))
            released.append(point)
    temp = Path(tempfile.gettempdir())
    for entry in sorted(temp.glob("engine-*")):
        owner = owner_pid(entry.name)
        if owner is not None and owned(owner):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()
            released.append(str(entry))
    return released


def release_own() -> list[str]:
    """Everything this process mounted or left in the temp dir: the last thing a run does."""
    me = os.getpid()
    return _release(lambda pid: pid == me)


def clean_stale_mounts() -> list[str]:
    """Unmount and remove what installers that no longer run left behind."""
    return _release(lambda pid: not alive(pid))


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
