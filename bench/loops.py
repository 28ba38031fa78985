"""Loop devices for the benchmarks (qemu/loops.py, in the benchmarks' own range, always
detached) and the shared machine's load for the report."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from qemu import loops


@contextlib.contextmanager
def loop(path: Path, size: int, allocate: bool = False) -> Iterator[str]:
    """A loop device over a new file of size bytes; allocate: preallocate its blocks (a real
    disk has no sparse-file block allocation, so neither side should pay for it)."""
    with open(path, "wb") as handle:
        handle.truncate(size)
        if allocate:
            os.posix_fallocate(handle.fileno(), 0, size)
    with loops.loop_device(path, loops.BENCH, partitions=False) as device:
        yield device


def load() -> str:
    """The 1/5/15-minute load averages and the core count: the machine is shared."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.1f} / {five:.1f} / {fifteen:.1f} on {os.cpu_count()} cores"
