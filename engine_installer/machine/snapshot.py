"""Machine snapshot: plain data describing a machine, from a live probe or a recorded file.

The live probe (probe.py, hw/) fills it on a real machine; a recorded snapshot (JSON) replaces
the probe so the whole TUI runs in --dry-run on a developer machine, touching nothing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from engine_installer.base.errors import UserError
from engine_installer.ondisk.vms import VMInfo

# Install states reported by detection.
STATE_UPGRADEABLE = "upgradeable"
STATE_SAME_VERSION = "same-version"
STATE_NEWER = "newer-than-media"  # installing the media would be a downgrade
STATE_INCOMPLETE = "incomplete"  # the marker says the install never finished
STATE_DAMAGED = "damaged"  # Engine partitions, but only a reinstall can fix what is broken
STATE_REPAIRABLE = "repairable"  # an Engine whose table or boot files a repair restores
STATE_FOREIGN = "foreign"  # another system or any other signature; never offered for upgrade
INSTALL_STATES = (
    STATE_UPGRADEABLE,
    STATE_SAME_VERSION,
    STATE_NEWER,
    STATE_INCOMPLETE,
    STATE_DAMAGED,
    STATE_REPAIRABLE,
    STATE_FOREIGN,
)
# States of a complete, working Engine (an upgrade keeps its VMs).
ENGINE_STATES = (STATE_UPGRADEABLE, STATE_SAME_VERSION, STATE_NEWER)
# What a repair restores (DetectedInstall.repairs).
REPAIR_GPT = "gpt"  # the partition table, from its good copy
REPAIR_BOOTENV = "bootenv"  # the boot environment, naming the installed slot
REPAIR_MARKER = "marker"  # the install marker, from what the slots hold
REPAIR_BIOS_BOOT = "bios-boot"  # GRUB's boot code in the MBR (lost with the protective MBR)


@dataclass
class PartitionInfo:
    path: str
    number: int
    size: int
    label: str = ""  # GPT partition name
    fstype: str = ""
    mountpoint: str = ""  # where its filesystem is mounted first ("" when it is not)
    in_use: str = ""  # why it is busy (mounted, swap, held), worded as DiskInfo.in_use; or ""
    mountpoints: list[str] = field(default_factory=list)  # every place it is mounted
    swap: bool = False  # active swap: the partition itself or a swap file on its filesystem
    holders: list[str] = field(default_factory=list)  # dm/md devices on it (dm-0, md127)


@dataclass
class StackedDevice:
    """A device-mapper or md device built on a disk (LVM, RAID, dm-crypt), directly or through
    others, and how the running system uses it."""

    path: str  # /dev/dm-0
    mountpoints: list[str] = field(default_factory=list)
    swap: bool = False


@dataclass
class DiskInfo:
    path: str  # /dev/sda
    size: int
    model: str = ""
    vendor: str = ""
    serial: str = ""
    bus: str = ""  # ata, nvme, usb, scsi, virtio, loop, ...
    logical_sector_size: int = 512
    removable: bool = False
    read_only: bool = False
    partitions: list[PartitionInfo] = field(default_factory=list)
    by_id: list[str] = field(default_factory=list)
    # Why this disk may not be an install target (mounted, swap, holder of LVM/RAID...), or "".
    in_use: str = ""
    # Another installer process (its pid) has this disk's partitions mounted: it is writing it.
    busy_installer: int = 0
    # The live system's medium, or the disk the payload/ISO being installed lives on.
    is_boot_medium: bool = False
    # Driver of the storage controller the disk hangs off (ahci, nvme, vmd, ata_piix,
    # virtio_blk, ...); filled by hw/probe.py, "" when unknown.
    controller: str = ""
    # How the running system uses the disk, as facts each face applies its own policy to.
    fstype: str = ""  # a filesystem straight on the whole disk (no partition table)
    mountpoints: list[str] = field(default_factory=list)  # where that filesystem is mounted
    swap: bool = False  # the whole disk is active swap, or its filesystem holds a swap file
    holders: list[str] = field(default_factory=list)  # dm/md devices on the whole disk
    stacked: list[StackedDevice] = field(default_factory=list)  # dm/md above it, any depth
    holds_source: bool = False  # the payload or ISO the probe was given lives on it

    def describe(self) -> str:
        gb = self.size / 1e9
        name = " ".join(p for p in (self.vendor, self.model) if p) or "disk"
        return f"{self.path} {name} {gb:.1f} GB"


@dataclass
class StorageController:
    """A PCI storage controller, so hw-check can explain a disk Linux cannot see (VMD, RST RAID)."""

    address: str  # PCI address, 0000:00:17.0
    kind: str  # ahci | raid | vmd | nvme | ide | virtio | other
    driver: str = ""  # bound kernel driver, "" when none
    vendor_id: str = ""  # 8086
    device_id: str = ""
    # NVMe disks Intel RST hid behind the AHCI controller (ahci's remapped_nvme attribute).
    remapped_nvme: int = 0


@dataclass
class SlotInfo:
    version: str = ""
    build: str = ""


@dataclass
class DetectedInstall:
    disk: str
    state: str
    version: str = ""  # the Engine that boots next (a slot on trial counts)
    build: str = ""
    active_slot: str = ""  # the known-good slot GRUB falls back to
    installed_at: str = ""
    model: str = ""
    size: int = 0
    reason: str = ""  # why damaged/incomplete/foreign/repairable, or a note; one sentence
    vms: list[VMInfo] = field(default_factory=list)
    trial_slot: str = ""  # a slot on trial after an upgrade ("" when none)
    tries: int = 0  # boots the trial slot has left
    slots: dict[str, SlotInfo] = field(default_factory=dict)  # what each slot holds
    partitions: dict[str, list[int]] = field(default_factory=dict)  # label → number, start, size
    problems: list[str] = field(default_factory=list)  # damage found, one sentence each
    repairs: list[str] = field(default_factory=list)  # what a repair restores (REPAIR_*)
    signatures: list[str] = field(default_factory=list)  # wipefs' view of the whole disk
    # The signed UEFI boot chain on the ESP (ondisk/bootchain.py), {} when it has none.
    boot_chain: dict[str, str] = field(default_factory=dict)

    @property
    def is_engine(self) -> bool:
        return self.state != STATE_FOREIGN

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MachineSnapshot:
    dmi: dict[str, str] = field(default_factory=dict)  # sys_vendor, product_name, ...
    cpu_model: str = ""
    cpu_flags: list[str] = field(default_factory=list)
    cpu_count: int = 0
    memory_bytes: int = 0
    firmware: str = "bios"  # "uefi" or "bios"
    # "on" | "off" | "unsupported" (legacy BIOS boot); "" = not recorded (older snapshots).
    secure_boot: str = ""
    acpi_dmar: bool = False  # VT-d advertised by the firmware
    disks: list[DiskInfo] = field(default_factory=list)
    # Recorded machines carry detection results; a live probe runs detection instead.
    installs: list[DetectedInstall] = field(default_factory=list)
    # Recorded machines may name the boot medium's Engine version ("5.0").
    media_version: str = ""
    media_build: str = ""
    description: str = ""
    storage_controllers: list[StorageController] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(f"{where}: unknown key '{unknown[0]}'; remove it or fix its spelling")
    return cls(**data)


def snapshot_from_json(data: dict[str, Any], where: str = "snapshot") -> MachineSnapshot:
    data = dict(data)
    disks = []
    for disk in data.pop("disks", []):
        disk = dict(disk)
        parts = [_build(PartitionInfo, p, where) for p in disk.pop("partitions", [])]
        stacked = [_build(StackedDevice, s, where) for s in disk.pop("stacked", [])]
        disks.append(_build(DiskInfo, dict(disk, partitions=parts, stacked=stacked), where))
    installs = []
    for inst in data.pop("installs", []):
        inst = dict(inst)
        vms = [_build(VMInfo, v, where) for v in inst.pop("vms", [])]
        slots = {k: _build(SlotInfo, v, where) for k, v in inst.pop("slots", {}).items()}
        installs.append(_build(DetectedInstall, dict(inst, vms=vms, slots=slots), where))
    controllers = [_build(StorageController, c, where) for c in data.pop("storage_controllers", [])]
    return _build(
        MachineSnapshot,
        dict(data, disks=disks, installs=installs, storage_controllers=controllers),
        where,
    )


def load_snapshot(path: Path) -> MachineSnapshot:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"machine snapshot {path} not found: check the path") from None
    except json.JSONDecodeError as err:
        raise UserError(f"machine snapshot {path} is not valid JSON: {err}") from None
    try:
        return snapshot_from_json(data, str(path))
    except TypeError as err:
        raise UserError(f"machine snapshot {path} is malformed: {err}") from None
