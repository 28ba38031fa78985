"""Reading GPT partition tables with pyparted (read-only: nothing is committed)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import parted

# libparted keeps global state (its device list); detection calls in from several threads.
LIBPARTED_LOCK = threading.Lock()


@contextlib.contextmanager
def parted_device(disk: str) -> Iterator[parted.Device]:
    """A libparted device, dropped from libparted's cache afterwards: the cache keeps the size
    it saw first, which goes stale when a disk (or loop device) is replaced under the path."""
    with LIBPARTED_LOCK:
        device = parted.getDevice(disk)
        try:
            yield device
        finally:
            device.removeFromCache()


def read_gpt(disk: str) -> list[tuple[int, str, int, int]]:
    """(number, name, start bytes, size bytes) per partition, read only; [] without a GPT."""
    with parted_device(disk) as device:
        try:
            table = parted.newDisk(device)
        except Exception:  # noqa: BLE001 - _ped raises several unrelated types for "no label"
            return []
        if table.type != "gpt":
            return []
        sector = device.sectorSize
        return [
            (p.number, p.name or "", p.geometry.start * sector, p.geometry.length * sector)
            for p in table.partitions
        ]
