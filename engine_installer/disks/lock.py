"""One writer per disk: the live system runs an installer on tty1 and on each serial console,
so two technicians (or a UI and an answer file) could confirm at the same moment."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from engine_installer.base.errors import RefusedError

LOCK_DIR = Path(os.environ.get("ENGINE_INSTALLER_LOCK_DIR", "/run/lock"))


def lock_path(disk: str) -> Path:
    """/run/lock/engine-installer-sda.lock for /dev/sda (or a by-id link to it)."""
    return LOCK_DIR / f"engine-installer-{Path(os.path.realpath(disk)).name}.lock"


@contextlib.contextmanager
def disk_write_lock(disk: str) -> Iterator[None]:
    """Hold an exclusive flock on a per-disk lock file while writing the disk.

    Not a flock on the device node itself: udev takes a shared lock there while it probes,
    and libparted runs `udevadm settle` after a commit, which would then wait out its whole
    timeout. flock dies with the process, so a killed installer leaves no stale lock.
    """
    path = lock_path(disk)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise RefusedError(
                f"another installer ({holder}) is already writing {disk}: wait for it to "
                "finish, or reboot to start over"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {_tty_name()}".encode(), 0)
        yield
    finally:
        os.close(fd)


def _tty_name() -> str:
    for stream in (0, 1, 2):
        with contextlib.suppress(OSError):
            return os.ttyname(stream).removeprefix("/dev/")
    return "no terminal"
