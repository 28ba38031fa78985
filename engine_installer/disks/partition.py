"""GPT partitioning with pyparted: the Engine layout, names and flags, committed via BLKPG."""

from __future__ import annotations

import os
import subprocess
import time

import parted

from engine_installer.base.errors import UserError
from engine_installer.ondisk.gpt import parted_device
from engine_installer.ondisk.layout import LABEL_BIOS, LABEL_ESP, PartitionSpec, partition_path

NODE_TIMEOUT = 10.0


def write_gpt(disk: str, specs: list[PartitionSpec]) -> None:
    """Replace whatever is on disk with a fresh GPT holding exactly specs."""
    with parted_device(disk) as device:
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
