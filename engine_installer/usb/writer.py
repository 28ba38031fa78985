"""Write an image onto whole block devices (USB sticks) and read it back.

The copy is the product's one copy engine (disks/blockcopy.py) with the USB policy: the first
MiB (partition tables, boot code, ISO volume descriptors) is zeroed and synced before the body
is written and written last, after everything else is on the stick and synced, so a stick that
dies or is pulled out mid-write never looks bootable; the last MiB of the stick is cleared (a
stale backup GPT there confuses firmware and partitioners); a stick that fails its read-back has
its first MiB zeroed. The read-back uses O_DIRECT (the page cache would otherwise return the
data we wrote instead of what the stick holds) and compares it byte for byte with the ISO.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine_installer.base.errors import UserError
from engine_installer.disks.blockcopy import HEAD, CopyError, Mismatch, copy_image, verify_image

TAIL = 1024 * 1024  # cleared: a stale backup GPT there confuses firmware and partitioners
BLKSSZGET = 0x1268
BLKRRPART = 0x125F
PHASES = {"write": "writing", "sync": "syncing", "verify": "verifying"}

Report = Callable[[str, int, int], None]  # phase, done, total


class StickError(UserError):
    """One stick failed; the message is one line naming the stick, the problem and the fix."""


def logical_block_size(fd: int) -> int:
    try:
        raw = fcntl.ioctl(fd, BLKSSZGET, struct.pack("i", 0))
        return max(512, struct.unpack("i", raw)[0])
    except OSError:
        return 512


def device_size(fd: int) -> int:
    return os.lseek(fd, 0, os.SEEK_END)


def reread_partitions(fd: int) -> None:
    """Ask the kernel to show the new partitions (sdb1...); not all devices support it."""
    with contextlib.suppress(OSError):
        fcntl.ioctl(fd, BLKRRPART)


def open_device(path: str, write: bool) -> int:
    """O_DIRECT; for writing also O_EXCL, which fails if anything else has the disk open
    exclusively (a mounted filesystem, LVM, RAID, another writer)."""
    flags = os.O_DIRECT | os.O_CLOEXEC
    flags |= (os.O_RDWR | os.O_EXCL) if write else os.O_RDONLY
    try:
        return os.open(path, flags)
    except OSError as err:
        if err.errno == errno.EBUSY:
            raise StickError(
                f"{path} is busy (mounted, part of LVM/RAID, or open in another program): "
                "unmount or close it and try again"
            ) from None
        if err.errno in (errno.EACCES, errno.EPERM):
            raise StickError(f"{path}: permission denied: run engine-usb as root") from None
        if err.errno == errno.EROFS:
            raise StickError(
                f"{path} is read-only: check the stick's write-protect switch"
            ) from None
        raise StickError(f"{path} cannot be opened ({err.strerror})") from None


@dataclass
class StickResult:
    device: str
    model: str = ""
    serial: str = ""
    size: int = 0
    ok: bool = False
    message: str = ""
    write_seconds: float = 0.0
    verify_seconds: float = 0.0
    image_bytes: int = 0

    @property
    def write_mbps(self) -> float:
        return self.image_bytes / self.write_seconds / 1e6 if self.write_seconds else 0.0

    @property
    def verify_mbps(self) -> float:
        return self.image_bytes / self.verify_seconds / 1e6 if self.verify_seconds else 0.0


def _describe(err: CopyError, device: str, image: Path, phase: str) -> str:
    if err.side == "source":
        return f"{image} cannot be read ({err.reason}) at byte {err.offset}: check the ISO"
    if err.side == "target":
        hint = "the stick was pulled out or is faulty; try another stick"
        return f"{device} failed while {phase} ({err.reason}): {hint}"
    return f"{device} failed while {phase} ({err.side}: {err.reason}): report a bug"


def open_image(image: Path) -> int:
    try:
        return os.open(image, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise StickError(f"{image} cannot be read ({err.strerror}): check the ISO") from None


def write_and_verify(image: Path, size: int, fd: int, result: StickResult, report: Report) -> None:
    """The whole job for one stick (fd: O_RDWR | O_DIRECT), filling result; raises StickError."""
    device = result.device
    block = logical_block_size(fd)
    phase = PHASES["write"]

    def tracked(step: str, done: int, total: int) -> None:
        nonlocal phase
        phase = PHASES[step]
        report(phase, done, total)

    image_fd = open_image(image)
    try:
        started = time.monotonic()
        copy_image(image_fd, size, fd, block=block, head=HEAD, clear_tail=TAIL, report=tracked)
        result.write_seconds = time.monotonic() - started
        started = time.monotonic()
        verify_image(fd, size, block=block, source=image_fd, head=HEAD, report=tracked)
        result.verify_seconds = time.monotonic() - started
    except Mismatch as err:
        raise StickError(
            f"{device} does not read back what was written ({err}): the stick is faulty; its "
            "first MiB was zeroed so it cannot boot half-written, use another stick"
        ) from None
    except CopyError as err:
        raise StickError(_describe(err, device, image, phase)) from None
    finally:
        os.close(image_fd)
    reread_partitions(fd)
    result.ok = True
    result.message = "written and verified"
