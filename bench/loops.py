"""Loop devices for the benchmarks: high numbers (out of the way of `losetup -f` users and of
the tests' /dev/loop64+), always detached, and the shared machine's load for the report."""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

LOOP_CTL_ADD = 0x4C80
FIRST, LAST = 96, 160


@contextlib.contextmanager
def loop(path: Path, size: int, allocate: bool = False) -> Iterator[str]:
    """A loop device over a new file of size bytes; allocate: preallocate its blocks (a real
    disk has no sparse-file block allocation, so neither side should pay for it)."""
    with open(path, "wb") as handle:
        handle.truncate(size)
        if allocate:
            os.posix_fallocate(handle.fileno(), 0, size)
    device = ""
    for number in range(FIRST, LAST):
        candidate = f"/dev/loop{number}"
        if not os.path.exists(candidate):
            with contextlib.suppress(OSError), open("/dev/loop-control", "rb") as ctl:
                fcntl.ioctl(ctl, LOOP_CTL_ADD, number)
        if Path(f"/sys/block/loop{number}/loop/backing_file").exists():
            continue
        if subprocess.run(["losetup", candidate, str(path)], capture_output=True).returncode == 0:
            device = candidate
            break
    if not device:
        raise SystemExit("bench: no free loop device")
    try:
        yield device
    finally:
        subprocess.run(["partx", "-d", device], capture_output=True)
        subprocess.run(["losetup", "-d", device], capture_output=True)


def load() -> str:
    """The 1/5/15-minute load averages and the core count: the machine is shared."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.1f} / {five:.1f} / {fifteen:.1f} on {os.cpu_count()} cores"
