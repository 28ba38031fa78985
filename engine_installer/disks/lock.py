"""One writer per disk: the live system runs an installer on tty1 and on each serial console,
so two technicians (or a UI and an answer file) could confirm at the same moment."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator

from ..errors import RefusedError

# systemd-udevd takes a brief shared flock on a whole disk while it probes it (after every
# partition or mkfs event), so a busy lock is retried this long before it counts as another
# installer. Holding LOCK_EX also keeps udev from probing half-written partitions, which is
# the block-device locking protocol systemd documents for partitioning tools.
UDEV_GRACE_SECONDS = 15.0


@contextlib.contextmanager
def disk_write_lock(disk: str, grace: float = UDEV_GRACE_SECONDS) -> Iterator[None]:
    """Hold an exclusive advisory lock on the whole-disk node while writing it.

    flock on the device node needs no lock file and dies with the process, so a killed
    installer never leaves a stale lock behind.
    """
    fd = os.open(disk, os.O_RDONLY | os.O_CLOEXEC)
    try:
        deadline = time.monotonic() + grace
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise RefusedError(
                        f"another installer is already writing {disk} (from another "
                        "console?): wait for it to finish, or reboot to start over"
                    ) from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)
