"""One writer per disk: the live system runs an installer on tty1 and on each serial console,
so two technicians (or a UI and an answer file) could confirm at the same moment."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from engine_installer.base.errors import RefusedError, UserError
from engine_installer.base.i18n import _

LOCK_DIR = Path(os.environ.get("ENGINE_INSTALLER_LOCK_DIR", "/run/lock"))


def lock_path(disk: str, what: str = "installer") -> Path:
    """/run/lock/engine-installer-sda.lock for /dev/sda (or a by-id link to it)."""
    return LOCK_DIR / f"engine-{what}-{Path(os.path.realpath(disk)).name}.lock"


@contextlib.contextmanager
def _exclusive(path: Path, busy: str) -> Iterator[None]:
    """An exclusive flock on path, the holder's pid and terminal written in it; RefusedError
    with busy (holder filled in) when another process holds it. flock dies with the process,
    so a killed holder leaves no stale lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise RefusedError(busy.format(holder=holder)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {_tty_name()}".encode(), 0)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def disk_write_lock(disk: str) -> Iterator[None]:
    """Hold an exclusive flock on a per-disk lock file while writing the disk.

    Not a flock on the device node itself: udev takes a shared lock there while it probes,
    and libparted runs `udevadm settle` after a commit, which would then wait out its whole
    timeout. (The run holds the node against udev around everything but that commit:
    UdevHold.)
    """
    busy = _(
        "another installer ({holder}) is already writing {disk}: wait for it to finish, or "
        "reboot to start over"
    ).replace("{disk}", disk)  # {holder} is filled in by _exclusive
    with _exclusive(lock_path(disk), busy):
        yield


@contextlib.contextmanager
def update_lock(disk: str) -> Iterator[None]:
    """One engine-update at a time per Engine disk (stage, apply, cancel, a status that
    rewrites the status file); held for the whole command, around the disk write lock."""
    busy = (
        f"engine-update ({{holder}}) is already working on {disk}: wait for it to finish; "
        "engine-update status shows its progress"
    )
    with _exclusive(lock_path(disk, "update"), busy):
        yield


def update_lock_holder(disk: str) -> str:
    """Who holds the update lock of disk ("" when nobody: no engine-update runs on it)."""
    path = lock_path(disk, "update")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return ""
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
        return ""
    finally:
        os.close(fd)


def _tty_name() -> str:
    for stream in (0, 1, 2):
        with contextlib.suppress(OSError):
            return os.ttyname(stream).removeprefix("/dev/")
    return "no terminal"


# How long the installer waits for udev to let go of a disk it is probing (udev holds a shared
# lock for one event at a time: milliseconds, seconds on a machine busy with the install).
UDEV_LOCK_SECONDS = 60.0


class UdevHold:
    """systemd's block device locking (https://systemd.io/BLOCK_DEVICE_LOCKING/): an exclusive
    BSD lock on the whole-disk node, so that udev neither probes the disk nor re-reads its
    partition table while the installer writes it. udev re-reads the table (BLKRRPART: every
    partition node is removed and added again) whenever a writer closes the disk, e.g. after
    libparted's commit or GRUB's boot code; when it comes late (a busy machine, udev's small
    CPU share on the live system) it lands on mkfs opening a partition ("No such file or
    directory"). udev processes the postponed events once the lock is released.

    Released around libparted's commit (`released()`): libparted runs `udevadm settle`, which
    would wait for events udev cannot process while the lock is held."""

    def __init__(self, disk: str) -> None:
        self.disk = disk
        self.fd = os.open(disk, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        self.held = False

    def acquire(self, timeout: float = UDEV_LOCK_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise UserError(
                        f"udev kept {self.disk} busy for {timeout:.0f} s: check that nothing "
                        "else is using the disk, then run the install again"
                    ) from None
                time.sleep(0.05)
            else:
                self.held = True
                return

    def release(self) -> None:
        if self.held:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            self.held = False

    @contextlib.contextmanager
    def released(self) -> Iterator[None]:
        """Let udev at the disk for the block; taken again after it (not after a failure:
        the run stops there)."""
        self.release()
        yield
        self.acquire()

    def close(self) -> None:
        os.close(self.fd)  # closing drops the lock


@contextlib.contextmanager
def udev_hold(disk: str) -> Iterator[UdevHold]:
    """Hold `disk` against udev (UdevHold) for the duration of the block."""
    hold = UdevHold(disk)
    try:
        hold.acquire()
        yield hold
    finally:
        hold.close()
