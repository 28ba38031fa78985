"""One writer per disk: the live system runs an installer on tty1 and on each serial console,
so two technicians (or a UI and an answer file) could confirm at the same moment."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator

from ..errors import RefusedError


@contextlib.contextmanager
def disk_write_lock(disk: str) -> Iterator[None]:
    """Hold an exclusive advisory lock on the whole-disk node while writing it.

    flock on the device node needs no lock file and dies with the process, so a killed
    installer never leaves a stale lock behind.
    """
    fd = os.open(disk, os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RefusedError(
                f"another installer is already writing {disk} (from another console?): "
                "wait for it to finish, or reboot to start over"
            ) from None
        yield
    finally:
        os.close(fd)
