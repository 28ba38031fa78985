"""Which block devices may engine-usb write? The USB policy over the one machine probe.

The disks and how the running system uses them come from machine.probe (one reading of sysfs,
udev, mounts and swaps, shared with detection and the hardware check). This module only decides:
which disks are sticks, which are never offered and why, and how a named device resolves.
"""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from pathlib import Path

from engine_installer.base.errors import RefusedError, UserError
from engine_installer.machine.probe import probe_disks
from engine_installer.machine.snapshot import DiskInfo, PartitionInfo

# A disk holding any of these is the running system (or the live system's boot medium).
SYSTEM_MOUNTS = ("/", "/boot", "/boot/efi", "/usr", "/var", "/home", "/run/live/medium")
BIG_STICK = 128 * 10**9  # above this a "stick" is suspicious: confirm twice


def refusal(disk: DiskInfo) -> str:
    """Why engine-usb never writes this disk ("" when it may). A stick a desktop mounted on
    /media is not refused: the writer unmounts it."""
    parts = disk.partitions
    mountpoints = [
        *disk.mountpoints,
        *(m for p in parts for m in p.mountpoints),
        *(m for s in disk.stacked for m in s.mountpoints),  # LVM, dm-crypt, RAID on it
    ]
    system = next((m for m in mountpoints if m in SYSTEM_MOUNTS), "")
    if system:
        return f"it holds {system} of the running system"
    if disk.swap or any(p.swap for p in parts) or any(s.swap for s in disk.stacked):
        return "it holds active swap"
    if disk.holds_source:
        return "the ISO file itself lives on it"
    if disk.is_boot_medium:
        return "it holds the medium the live system runs from"
    holders = disk.holders + [h for p in parts for h in p.holders]
    if holders:
        return f"it is a member of LVM, RAID or dm-crypt (held by {', '.join(holders)})"
    if disk.read_only:
        return "it is read-only (check the stick's write-protect switch)"
    return ""


def usb_view(disk: DiskInfo) -> DiskInfo:
    """The disk as engine-usb shows it: in_use is engine-usb's own verdict (refusal), and a
    mounted filesystem straight on the whole disk is listed as its partition 0 (so it is shown
    and unmounted like any partition)."""
    parts = list(disk.partitions)
    if disk.mountpoints:
        whole = PartitionInfo(disk.path, 0, disk.size, fstype=disk.fstype)
        whole.mountpoint, whole.mountpoints = disk.mountpoints[0], list(disk.mountpoints)
        parts.insert(0, whole)
    return replace(disk, in_use=refusal(disk), partitions=parts)


def scan(iso: Path | None = None, root: Path = Path("/")) -> list[DiskInfo]:
    """Every disk of the machine (root: a recorded tree) in engine-usb's view; iso is the image
    to be written, whose own disk is never offered."""
    return [usb_view(disk) for disk in probe_disks(source=iso, root=root)]


def is_stick(disk: DiskInfo) -> bool:
    return disk.size > 0 and (disk.bus == "usb" or disk.removable)


def list_sticks(disks: list[DiskInfo]) -> list[DiskInfo]:
    """What `engine-usb list` shows: USB or removable whole disks that are safe to offer."""
    return [d for d in disks if is_stick(d) and not d.in_use]


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
        raise RefusedError(
            f"refusing to write {disk.path}: {disk.in_use}: name another stick "
            "(`engine-usb list` shows those that may be written)"
        )
    if not is_stick(disk) and not allow_non_removable:
        raise RefusedError(
            f"{disk.path} is not a USB or removable disk ({disk.bus or 'unknown bus'}): "
            "pass --allow-non-removable if you really mean it"
        )
    return disk


def _devnum_from_path(path: str) -> str:
    try:
        number = os.stat(path).st_rdev
    except OSError:
        return ""
    return f"{os.major(number)}:{os.minor(number)}"
