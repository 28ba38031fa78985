"""Which block devices may engine-usb write? Listing and target checks.

Facts come from sysfs (always there, works without a udev daemon), enriched by udev properties
through pyudev when the udev database has them (serial, bus); mounts come from psutil and swap
from /proc/swaps. Reading facts (read_sysfs, read_usage) is kept apart from deciding (classify),
so the rules are tested on a fake sysfs tree and a recorded usage snapshot.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from engine_installer.base.errors import RefusedError, UserError
from engine_installer.machine.snapshot import DiskInfo, PartitionInfo

# A disk holding any of these is the running system (or the live system's boot medium).
SYSTEM_MOUNTS = ("/", "/boot", "/boot/efi", "/usr", "/var", "/home", "/run/live/medium")
# Kernel devices that are never sticks: RAM disks, compressed swap, optical drives.
SKIP_PREFIXES = ("ram", "zram", "sr", "fd")
SECTOR = 512  # sysfs "size" is always in 512-byte units
BIG_STICK = 128 * 10**9  # above this a "stick" is suspicious: confirm twice


@dataclass
class PartFacts:
    name: str
    devnum: str
    size: int
    holders: list[str] = field(default_factory=list)


@dataclass
class BlockFacts:
    """What sysfs (and udev, if it knows) says about one whole disk."""

    name: str  # sda
    devnum: str  # "8:0"
    size: int
    removable: bool = False
    read_only: bool = False
    bus: str = ""
    model: str = ""
    vendor: str = ""
    serial: str = ""
    logical_sector_size: int = 512
    partitions: list[PartFacts] = field(default_factory=list)
    holders: list[str] = field(default_factory=list)
    slaves: list[str] = field(default_factory=list)  # dm/md: the devices underneath


@dataclass
class Usage:
    """How the running system uses block devices, by device number ("major:minor")."""

    mounts: list[tuple[str, str, str]] = field(default_factory=list)  # (devnum, mountpoint, fs)
    swaps: list[str] = field(default_factory=list)  # devnums
    iso_devnums: list[str] = field(default_factory=list)  # filesystem(s) the ISO lives on


# --- reading facts -------------------------------------------------------------------------


def _read(path: Path, default: str = "") -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return default


def _bus_from_path(name: str, real: str) -> str:
    if "/usb" in real:
        return "usb"
    for prefix, bus in (("loop", "loop"), ("nvme", "nvme"), ("dm-", "dm"), ("md", "md")):
        if name.startswith(prefix):
            return bus
    if "/virtio" in real:
        return "virtio"
    if "/ata" in real:
        return "ata"
    if "/mmc" in real:
        return "mmc"
    return "scsi"


def _usb_serial(real: Path) -> str:
    """The USB device's iSerial: walk up from the block device to the node with idVendor."""
    for parent in real.parents:
        if (parent / "idVendor").exists():
            return _read(parent / "serial")
    return ""


def read_sysfs(sys_root: Path = Path("/sys")) -> list[BlockFacts]:
    disks = []
    block = sys_root / "block"
    for entry in sorted(block.iterdir()) if block.is_dir() else []:
        name = entry.name
        if name.startswith(SKIP_PREFIXES):
            continue
        real = entry.resolve()
        device = entry / "device"
        facts = BlockFacts(
            name=name,
            devnum=_read(entry / "dev"),
            size=int(_read(entry / "size", "0") or 0) * SECTOR,
            removable=_read(entry / "removable") == "1",
            read_only=_read(entry / "ro") == "1",
            bus=_bus_from_path(name, str(real)),
            model=_read(device / "model"),
            vendor=_read(device / "vendor"),
            serial=_read(device / "serial") or _read(entry / "serial"),
            logical_sector_size=int(_read(entry / "queue" / "logical_block_size", "512") or 512),
            holders=sorted(p.name for p in (entry / "holders").glob("*")),
            slaves=sorted(p.name for p in (entry / "slaves").glob("*")),
        )
        if facts.bus == "usb" and not facts.serial:
            facts.serial = _usb_serial(real)
        for child in sorted(entry.iterdir()):
            if (child / "partition").exists():
                facts.partitions.append(
                    PartFacts(
                        name=child.name,
                        devnum=_read(child / "dev"),
                        size=int(_read(child / "size", "0") or 0) * SECTOR,
                        holders=sorted(p.name for p in (child / "holders").glob("*")),
                    )
                )
        disks.append(facts)
    return disks


def enrich_from_udev(disks: list[BlockFacts]) -> None:
    """udev knows the real bus and the serial number when its database is populated; without a
    udev daemon the sysfs facts stand."""
    try:
        import pyudev

        context = pyudev.Context()
    except Exception:  # noqa: BLE001 - no libudev: sysfs facts are enough
        return
    for disk in disks:
        try:
            dev = pyudev.Devices.from_name(context, "block", disk.name)
            props = dict(dev.properties)
        except Exception:  # noqa: BLE001 - device vanished or no udev data
            continue
        if props.get("ID_BUS") == "usb":
            disk.bus = "usb"
        disk.serial = props.get("ID_SERIAL_SHORT") or disk.serial
        disk.model = disk.model or props.get("ID_MODEL", "").replace("_", " ")
        disk.vendor = disk.vendor or props.get("ID_VENDOR", "").replace("_", " ")


def devnum_of(path: str | os.PathLike) -> str:
    """'major:minor' of a block device node, or of the filesystem a file lives on."""
    st = os.stat(path)
    num = st.st_rdev if stat.S_ISBLK(st.st_mode) else st.st_dev
    return f"{os.major(num)}:{os.minor(num)}"


def read_usage(iso: Path | None = None) -> Usage:
    usage = Usage()
    for part in psutil.disk_partitions(all=True):
        if part.device.startswith("/dev/"):
            try:
                usage.mounts.append((devnum_of(part.device), part.mountpoint, part.fstype))
            except OSError:
                continue
    try:
        lines = Path("/proc/swaps").read_text().splitlines()[1:]
    except OSError:
        lines = []
    for line in lines:
        source = line.split()[0] if line.split() else ""
        try:  # a swap partition's own number, or for a swap file the filesystem's
            usage.swaps.append(devnum_of(source))
        except OSError:
            continue
    if iso is not None:
        with contextlib.suppress(OSError):
            usage.iso_devnums.append(devnum_of(iso))
        # Filesystems like btrfs report an anonymous st_dev: also find the ISO's mount.
        best = ""
        for devnum, mountpoint, _fs in usage.mounts:
            resolved = str(Path(iso).resolve())
            inside = resolved == mountpoint or resolved.startswith(mountpoint.rstrip("/") + "/")
            if inside and len(mountpoint) > len(best):
                best, best_dev = mountpoint, devnum
        if best:
            usage.iso_devnums.append(best_dev)
    return usage


# --- deciding ------------------------------------------------------------------------------


def _disks_under(devnum: str, disks: list[BlockFacts]) -> set[str]:
    """The whole disks a device number lives on: a partition's disk, a dm/md device's members."""
    by_devnum: dict[str, BlockFacts] = {}
    for disk in disks:
        by_devnum[disk.devnum] = disk
        for part in disk.partitions:
            by_devnum[part.devnum] = disk
    by_name = {disk.name: disk for disk in disks}
    for disk in disks:
        for part in disk.partitions:
            by_name.setdefault(part.name, disk)
    found: set[str] = set()
    todo = [by_devnum[devnum]] if devnum in by_devnum else []
    while todo:
        disk = todo.pop()
        if disk.name in found:
            continue
        found.add(disk.name)
        todo.extend(by_name[s] for s in disk.slaves if s in by_name)
    return found


def classify(disks: list[BlockFacts], usage: Usage) -> list[DiskInfo]:
    """DiskInfo for every disk, with in_use naming why it may never be written ("" if none)."""
    reasons: dict[str, str] = {}

    def mark(devnum: str, why: str) -> None:
        for name in _disks_under(devnum, disks):
            reasons.setdefault(name, why)

    for devnum, mountpoint, _fs in usage.mounts:
        if mountpoint in SYSTEM_MOUNTS:
            mark(devnum, f"it holds {mountpoint} of the running system")
    for devnum in usage.swaps:
        mark(devnum, "it holds active swap")
    for devnum in usage.iso_devnums:
        mark(devnum, "the ISO file itself lives on it")
    mounted = {devnum: mountpoint for devnum, mountpoint, _fs in usage.mounts}
    fstypes = {devnum: fs for devnum, _mp, fs in usage.mounts}
    result = []
    for disk in disks:
        holders = disk.holders + [h for part in disk.partitions for h in part.holders]
        why = reasons.get(disk.name, "")
        if not why and holders:
            why = f"it is a member of LVM, RAID or dm-crypt (held by {', '.join(holders)})"
        if not why and disk.read_only:
            why = "it is read-only (check the stick's write-protect switch)"
        info = DiskInfo(
            path=f"/dev/{disk.name}",
            size=disk.size,
            model=disk.model,
            vendor=disk.vendor,
            serial=disk.serial,
            bus=disk.bus,
            logical_sector_size=disk.logical_sector_size,
            removable=disk.removable,
            read_only=disk.read_only,
            in_use=why,
            is_boot_medium=bool(reasons.get(disk.name, "").startswith("it holds /run/live")),
            partitions=[
                PartitionInfo(
                    path=f"/dev/{part.name}",
                    number=_part_number(part.name),
                    size=part.size,
                    fstype=fstypes.get(part.devnum, ""),
                    mountpoint=mounted.get(part.devnum, ""),
                )
                for part in disk.partitions
            ],
        )
        if disk.devnum in mounted:  # a filesystem straight on the whole disk
            info.partitions.insert(
                0,
                PartitionInfo(
                    info.path,
                    0,
                    disk.size,
                    fstype=fstypes[disk.devnum],
                    mountpoint=mounted[disk.devnum],
                ),
            )
        result.append(info)
    return result


def _part_number(name: str) -> int:
    digits = ""
    for char in reversed(name):
        if not char.isdigit():
            break
        digits = char + digits
    return int(digits or 0)


def is_stick(disk: DiskInfo) -> bool:
    return disk.size > 0 and (disk.bus == "usb" or disk.removable)


def list_sticks(disks: list[DiskInfo]) -> list[DiskInfo]:
    """What `engine-usb list` shows: USB or removable whole disks that are safe to offer."""
    return [d for d in disks if is_stick(d) and not d.in_use]


def scan(iso: Path | None = None, sys_root: Path = Path("/sys")) -> list[DiskInfo]:
    facts = read_sysfs(sys_root)
    if sys_root == Path("/sys"):
        enrich_from_udev(facts)
    return classify(facts, read_usage(iso))


def mounted_partitions(disk: DiskInfo) -> list[PartitionInfo]:
    return [p for p in disk.partitions if p.mountpoint]


def resolve_target(
    device: str,
    disks: list[DiskInfo],
    allow_non_removable: bool,
) -> DiskInfo:
    """The whole disk the user named, or UserError/RefusedError saying why it may not be used.
    Size, busy and mount checks come later, per device (they fail one stick, not the run)."""
    try:
        st = os.stat(device)
    except FileNotFoundError:
        raise UserError(f"{device} does not exist: check the name with `engine-usb list`") from None
    except OSError as err:
        raise UserError(f"{device} cannot be examined ({err.strerror})") from None
    if not stat.S_ISBLK(st.st_mode):
        raise UserError(f"{device} is not a block device: name a disk such as /dev/sdb")
    devnum = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    facts_by_num = {_devnum_from_path(d.path): d for d in disks}
    disk = facts_by_num.get(devnum)
    if disk is None:
        for candidate in disks:
            for part in candidate.partitions:
                if part.number and _devnum_from_path(part.path) == devnum:
                    raise UserError(
                        f"{device} is a partition of {candidate.path}: name the whole disk "
                        f"{candidate.path}"
                    )
        raise UserError(f"{device} is not a whole disk engine-usb can write: name a stick")
    if disk.in_use:
        raise RefusedError(f"refusing to write {disk.path}: {disk.in_use}")
    if not is_stick(disk) and not allow_non_removable:
        raise RefusedError(
            f"{disk.path} is not a USB or removable disk ({disk.bus or 'unknown bus'}): "
            "pass --allow-non-removable if you really mean it"
        )
    return disk


def _devnum_from_path(path: str) -> str:
    try:
        return devnum_of(path)
    except OSError:
        return ""
