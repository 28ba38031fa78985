"""GPT partitioning with pyparted: the Engine layout, names and flags, committed via BLKPG."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Iterator

import parted

from ..errors import UserError
from ..layout import LABEL_BIOS, LABEL_ESP, PartitionSpec
from ..probe import partition_path

NODE_TIMEOUT = 10.0
# libparted keeps global state (its device list); detection calls in from several threads.
_LIBPARTED = threading.Lock()


@contextlib.contextmanager
def _device(disk: str) -> Iterator[parted.Device]:
    """A libparted device, dropped from libparted's cache afterwards: the cache keeps the size
    it saw first, which goes stale when a disk (or loop device) is replaced under the path."""
    with _LIBPARTED:
        device = parted.getDevice(disk)
        try:
            yield device
        finally:
            device.removeFromCache()


def write_gpt(disk: str, specs: list[PartitionSpec]) -> None:
    """Replace whatever is on disk with a fresh GPT holding exactly specs."""
    with _device(disk) as device:
        _write_gpt(device, specs)
    wait_for_partitions(disk, [s.number for s in specs])


def _write_gpt(device: parted.Device, specs: list[PartitionSpec]) -> None:
    sector = device.sectorSize
    table = parted.freshDisk(device, "gpt")
    for spec in specs:
        geometry = parted.Geometry(
            device=device, start=spec.start // sector, length=spec.size // sector
        )
        partition = parted.Partition(disk=table, type=parted.PARTITION_NORMAL, geometry=geometry)
        # Exact geometry: compute_layout already aligned everything to 1 MiB.
        table.addPartition(partition, constraint=parted.Constraint(exactGeom=geometry))
        partition.set_name(spec.label)
        if spec.label == LABEL_BIOS:
            partition.setFlag(parted.PARTITION_BIOS_GRUB)
        elif spec.label == LABEL_ESP:
            partition.setFlag(parted.PARTITION_BOOT)  # on GPT: the ESP type GUID
    # commit() writes both GPT copies and tells the kernel through BLKPG, which is what
    # creates /dev/loopNpM nodes (a plain re-read does not for loop devices).
    table.commit()


def wait_for_partitions(disk: str, numbers: list[int], timeout: float = NODE_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    paths = [partition_path(disk, n) for n in numbers]
    while True:
        missing = [p for p in paths if not os.path.exists(p)]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise UserError(
                f"partition {missing[0]} did not appear after partitioning {disk}; "
                "check that the disk is not busy and retry"
            )
        time.sleep(0.05)


def ensure_partition_nodes(disk: str, numbers: list[int]) -> None:
    """Make the kernel know an existing table (upgrade on a freshly attached loop disk)."""
    if all(os.path.exists(partition_path(disk, n)) for n in numbers):
        return
    # partx -a adds partitions through BLKPG (it fails harmlessly on ones already known).
    subprocess.run(["partx", "-a", disk], capture_output=True, check=False)
    wait_for_partitions(disk, numbers)


def read_gpt(disk: str) -> list[tuple[int, str, int, int]]:
    """(number, name, start bytes, size bytes) per partition, read only; [] without a GPT."""
    with _device(disk) as device:
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
