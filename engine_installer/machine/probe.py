"""The one machine probe: whole disks as DiskInfo records, and the machine snapshot (read-only).

sysfs gives the disk attributes and how block devices stack (partitions, holders, dm/md
slaves, the files behind loop devices) on every machine; /proc/self/mountinfo and /proc/swaps
say how the running system uses them. On the live machine pyudev adds by-id links, serials and
partition properties when a udev daemon runs; without udev, partition names and filesystem
types come from `blkid -p` (libblkid reads the GPT and superblocks itself). Pointed at a
recorded tree (root), the probe reads only files under it: no udev, blkid, by-id links or
stat() of device nodes, so tests and captured machines replay exactly.

The probe states facts (mounts, swap, holders, stacked devices, the boot medium); each face
applies its own policy to them (prepare() for installs, usb/devices.py for sticks).
"""

from __future__ import annotations

import logging
import os
import re
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from engine_installer.base.errors import UserError
from engine_installer.base.i18n import _
from engine_installer.machine.ownership import alive, owner_pid
from engine_installer.machine.snapshot import (
    DiskInfo,
    MachineSnapshot,
    PartitionInfo,
    StackedDevice,
)
from engine_installer.ondisk.layout import SLOT_LABELS

log = logging.getLogger("engine_installer")
LIVE = Path("/")
SYS_BLOCK = Path("/sys/block")
UDEV_CONTROL = Path("/run/udev/control")  # exists while a udev daemon runs
UDEV_DATA = Path("/run/udev/data")  # udev's database: b<major>:<minor> per block device seen
UDEV_WAIT_SECONDS = 60.0
BY_ID = Path("/dev/disk/by-id")
LIVE_MEDIUM = "/run/live/medium"  # where live-boot mounts the medium it booted from
LIVE_ROOT = "/run/live/"  # live-boot's medium, layers and toram copies live below it
# Device-mapper, md, RAM disks, optical drives and zram are never install targets.
SKIP_PREFIXES = ("ram", "dm-", "md", "sr", "zram", "fd", "nbd")
SECTOR = 512  # sysfs "size" is always in 512-byte units


def _read(path: Path, default: str = "") -> str:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return default


def _int(path: Path, default: int = 0) -> int:
    """A number from sysfs; default when the file vanished or holds no number."""
    text = _read(path)
    return int(text) if text.isdigit() else default


def _entries(path: Path) -> list[Path]:
    """A sysfs directory's entries; [] when it vanished (a disk pulled, a table re-read)."""
    try:
        return sorted(path.iterdir())
    except OSError:
        return []


def _unescape(text: str) -> str:
    r"""mountinfo and /proc/swaps write space, tab, newline and backslash as \040 and so on."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def _devnum(number: int) -> str:
    return f"{os.major(number)}:{os.minor(number)}"


def resolve_disk_path(path: str) -> str:
    """Resolve /dev/disk/by-id/... links; refuse what is missing."""
    if not os.path.exists(path):
        raise UserError(f"{path} does not exist: name a disk such as /dev/sda (see lsblk)")
    return os.path.realpath(path)


def _udev_context():
    """A pyudev context when a udev daemon runs (its database exists), else None."""
    if not UDEV_CONTROL.exists():
        return None
    try:
        import pyudev

        return pyudev.Context()
    except Exception:  # noqa: BLE001 - udev is optional; sysfs suffices
        return None


def _udev_props(context, sys_path: Path) -> dict[str, str]:
    if context is None:
        return {}
    try:
        import pyudev

        device = pyudev.Devices.from_sys_path(context, os.path.realpath(sys_path))
        return {k: str(v) for k, v in device.properties.items()}
    except Exception:  # noqa: BLE001 - the device vanished or udev has no record of it
        return {}


def _blkid(paths: list[str]) -> dict[str, dict[str, str]]:
    """Low-level probe (-p bypasses the cache) of partitions: PART_ENTRY_NAME, TYPE, ..."""
    result: dict[str, dict[str, str]] = {}
    for path in paths:
        if not os.path.exists(path):
            continue
        proc = subprocess.run(
            ["blkid", "-p", "-o", "export", path], capture_output=True, text=True, check=False
        )
        props = {}
        for line in proc.stdout.splitlines():
            key, _sep, value = line.partition("=")
            props[key] = value
        result[path] = props
    return result


def _bus(name: str, real: str, props: dict[str, str]) -> str:
    """udev's ID_BUS when udev knows the disk, else what its sysfs path runs through."""
    if props.get("ID_BUS"):
        return props["ID_BUS"]
    if "/usb" in real:
        return "usb"
    if name.startswith("loop"):
        return "loop"
    if name.startswith("nvme"):
        return "nvme"
    if "/virtio" in real or name.startswith("vd"):
        return "virtio"
    for bus in ("ata", "mmc"):
        if f"/{bus}" in real:
            return bus
    return "scsi" if name.startswith("sd") else ""


def _usb_serial(real: Path) -> str:
    """A USB disk's iSerial without udev: the ancestor USB device (the one with idVendor)."""
    for parent in real.parents:
        if (parent / "idVendor").exists():
            return _read(parent / "serial")
    return ""


def _devnums(name: str) -> list[str]:
    """major:minor of a live disk and of each of its partitions (none when it has vanished)."""
    sys_path = SYS_BLOCK / name
    try:
        parts = [p for p in sys_path.iterdir() if (p / "partition").exists()]
    except OSError:
        return []
    return [n for n in (_read(p / "dev") for p in [sys_path, *parts]) if n]


def wait_for_udev(names: list[str], timeout: float = UDEV_WAIT_SECONDS) -> bool:
    """Wait until udev has seen these disks and their partitions, then for its queue to drain.

    The live system starts the installer while udev's coldplug may still be running, and a
    device the coldplug has not reached yet has no by-id links or properties. udev records
    each device it has processed in its database, so wait for those records (not for a
    fixed time), then `udevadm settle` for events still in flight. False when the time ran
    out: the probe then goes on with what sysfs and blkid say."""
    deadline = time.monotonic() + timeout
    waiting = [n for name in names for n in _devnums(name)]
    while waiting and time.monotonic() < deadline:
        waiting = [n for n in waiting if not (UDEV_DATA / f"b{n}").exists()]
        if waiting:
            time.sleep(0.1)
    left = max(1, round(deadline - time.monotonic()))
    settled = subprocess.run(["udevadm", "settle", f"--timeout={left}"],
                             capture_output=True, check=False).returncode == 0  # fmt: skip
    if waiting or not settled:
        log.warning("udev has not processed %s after %.0f s", ", ".join(waiting) or "its queue",
                    timeout)  # fmt: skip
        return False
    return True


@dataclass
class _Mount:
    devnum: str  # "major:minor" of the block device behind it ("0:N" when none)
    mountpoint: str
    fstype: str


class _Machine:
    """One reading of a machine's block devices, mounts and swaps.

    root "/" is the live machine; any other root is a recorded tree whose sys/ and proc/ are
    read instead. source is the payload or ISO being read: its disk is the boot medium.
    On the live machine with a udev daemon, the reading waits until udev has seen the disks
    named in `wait` (every candidate when None; wait_for_udev)."""

    def __init__(
        self, root: Path = LIVE, source: Path | None = None, wait: list[str] | None = None
    ) -> None:
        self.root = root
        self.live = root == LIVE
        self.sys_block = root / "sys" / "block"
        self.devnums: dict[str, str] = {}  # kernel name → "major:minor"
        self.names: dict[str, str] = {}  # "major:minor" → kernel name
        self.parent: dict[str, str] = {}  # partition → the disk (or dm/md device) it is on
        self.partitions: dict[str, list[Path]] = {}  # disk → its partitions' sysfs dirs
        self.slaves: dict[str, list[str]] = {}  # dm/md device → the devices it is built on
        self.dm_names: dict[str, str] = {}  # device-mapper name (vg-home) → dm-0
        self.disk_names = [entry.name for entry in _entries(self.sys_block)]
        self.context = _udev_context() if self.live else None
        if self.context is not None:
            wait_for_udev(self.candidates() if wait is None else wait)
        for name in self.disk_names:
            self._index(name)
        self.mounts = self._read_mounts()
        self.swaps = self._read_swaps()
        live_medium = [m.devnum for m in self.mounts if m.mountpoint == LIVE_MEDIUM]
        self.source_disks = self._holding([self._path_devnum(str(source))]) if source else set()
        self.boot_disks = self._holding(live_medium) | self.source_disks
        self.stacked = self._stacked()
        self.by_id = self._by_id() if self.live else {}

    # --- reading sysfs and procfs --------------------------------------------------------

    def _index(self, name: str) -> None:
        entry = self.sys_block / name
        self._add(name, _read(entry / "dev"))
        parts = [p for p in _entries(entry) if (p / "partition").exists()]
        self.partitions[name] = sorted(parts, key=lambda p: _int(p / "partition"))
        for part in parts:
            self._add(part.name, _read(part / "dev"))
            self.parent[part.name] = name
        self.slaves[name] = [p.name for p in _entries(entry / "slaves")]
        if dm_name := _read(entry / "dm" / "name"):
            self.dm_names[dm_name] = name

    def _add(self, name: str, devnum: str) -> None:
        if devnum:
            self.devnums[name] = devnum
            self.names[devnum] = name

    def _read_mounts(self) -> list[_Mount]:
        mounts = []
        for line in _read(self.root / "proc" / "self" / "mountinfo").splitlines():
            head, _sep, tail = line.partition(" - ")
            fields, more = head.split(), tail.split()
            if len(fields) < 5 or len(more) < 2:
                continue
            devnum = fields[2]
            if devnum.startswith("0:"):
                # btrfs (and other filesystems) report an anonymous device number here; the
                # mount source names the block device.
                devnum = self._node_devnum(_unescape(more[1])) or devnum
            mounts.append(_Mount(devnum, _unescape(fields[4]), more[0]))
        return mounts

    def _read_swaps(self) -> set[str]:
        """Device numbers holding active swap: a swap device, or a swap file's filesystem."""
        swaps = set()
        for line in _read(self.root / "proc" / "swaps").splitlines()[1:]:
            fields = line.split()
            if len(fields) < 2:
                continue
            path = _unescape(fields[0])
            devnum = self._path_devnum(path) if fields[1] == "file" else self._node_devnum(path)
            if devnum:
                swaps.add(devnum)
        return swaps

    def _node_devnum(self, path: str) -> str:
        """The device number of a /dev node (a mount or swap source); "" when it is none."""
        if not path.startswith("/dev/"):
            return ""
        if self.live:
            try:
                st = os.stat(path)
            except OSError:
                return ""
            return _devnum(st.st_rdev) if stat.S_ISBLK(st.st_mode) else ""
        name = os.path.basename(path)
        if path.startswith("/dev/mapper/"):
            name = self.dm_names.get(name, name)
        return self.devnums.get(name, "")

    def _path_devnum(self, path: str) -> str:
        """The block device a file lives on: its st_dev on the live machine; else the deepest
        mount above it (a recorded tree, or btrfs, whose st_dev names no block device)."""
        if self.live:
            try:
                devnum = _devnum(os.stat(path).st_dev)
            except OSError:
                return ""
            if devnum in self.names:
                return devnum
            path = os.path.realpath(path)
        best, found = "", ""
        for mount in self.mounts:
            point = mount.mountpoint
            inside = path == point or path.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):  # the later of two mounts on one point
                best, found = point, mount.devnum
        return found

    def _by_id(self) -> dict[str, list[str]]:
        links: dict[str, list[str]] = {}
        for link in _entries(BY_ID):
            links.setdefault(os.path.realpath(link), []).append(str(link))
        return links

    # --- how devices stack ---------------------------------------------------------------

    def _under(self, name: str, seen: set[str] | None = None) -> set[str]:
        """The whole disks a device lives on: a partition's disk, a dm/md device's members."""
        seen = set() if seen is None else seen
        if name in seen:
            return set()
        seen.add(name)
        if name in self.parent:
            return self._under(self.parent[name], seen)
        if self.slaves.get(name):
            return set().union(*(self._under(s, seen) for s in self.slaves[name]))
        return {name}

    def _holding(self, devnums: list[str]) -> set[str]:
        """The whole disks holding these devices, also through the files behind loop devices
        (an ISO loop-mounted from a file lives on the disk that holds the file too)."""
        disks: set[str] = set()
        todo, seen = list(devnums), set()
        while todo:
            devnum = todo.pop()
            if devnum in seen or devnum not in self.names:
                continue
            seen.add(devnum)
            for disk in self._under(self.names[devnum]):
                disks.add(disk)
                backing = _read(self.sys_block / disk / "loop" / "backing_file")
                if backing:
                    todo.append(self._path_devnum(backing.removesuffix(" (deleted)")))
        return disks

    def _mountpoints(self, devnum: str) -> list[str]:
        return [m.mountpoint for m in self.mounts if devnum and m.devnum == devnum]

    def _fstype(self, devnum: str) -> str:
        return next((m.fstype for m in self.mounts if devnum and m.devnum == devnum), "")

    def _stacked(self) -> dict[str, list[StackedDevice]]:
        """disk → the dm/md devices (and their partitions) built on it, at any depth."""
        result: dict[str, list[StackedDevice]] = {}
        for name in self.disk_names:
            if not self.slaves.get(name):
                continue
            for dev in [name, *(p.name for p in self.partitions.get(name, []))]:
                devnum = self.devnums.get(dev, "")
                record = StackedDevice(
                    f"/dev/{dev}", self._mountpoints(devnum), bool(devnum) and devnum in self.swaps
                )
                for disk in sorted(self._under(dev)):
                    result.setdefault(disk, []).append(record)
        return result

    # --- disks ---------------------------------------------------------------------------

    def candidates(self) -> list[str]:
        """Whole disks with a medium (unattached loop devices and empty readers have size 0)."""
        names = [n for n in self.disk_names if not n.startswith(SKIP_PREFIXES)]
        return [n for n in names if _int(self.sys_block / n / "size")]

    def medium_loop(self, name: str) -> str:
        """What makes loop device `name` part of the live medium, or "".

        live-boot stacks the medium's squashfs layers on loop devices (backed by
        /run/live/medium/live/*.squashfs, or a copy under /run/live/ with toram) and mounts
        them under /run/live/rootfs/. They are never targets and nothing a technician can act
        on, so the disk list leaves them out (the log names them). Loop devices elsewhere
        (tests, a technician's own image) are listed as usual."""
        if not name.startswith("loop"):
            return ""
        backing = _read(self.sys_block / name / "loop" / "backing_file")
        if backing.startswith(LIVE_ROOT):
            return backing
        mounts = self._mountpoints(self.devnums.get(name, ""))
        return next((f"mounted at {m}" for m in mounts if m.startswith(LIVE_ROOT)), "")

    def disk(self, name: str) -> DiskInfo | None:
        """The disk's record, or None when it vanished or lost its medium while probing."""
        entry = self.sys_block / name
        size = _int(entry / "size") * SECTOR
        if not size:
            log.info("/dev/%s vanished while probing; skipped", name)
            return None
        real = entry.resolve()
        props = _udev_props(self.context, entry)
        device = f"/dev/{name}"
        vendor = _read(entry / "device" / "vendor")
        bus = _bus(name, str(real), props)
        info = DiskInfo(
            path=device,
            size=size,
            model=_read(entry / "device" / "model") or props.get("ID_MODEL", "").replace("_", " "),
            # virtio puts a PCI vendor id (0x1af4) there, not a name
            vendor=("" if vendor.startswith("0x") else vendor)
            or props.get("ID_VENDOR", "").replace("_", " "),
            serial=props.get("ID_SERIAL_SHORT", "")
            or _read(entry / "device" / "serial")
            or _read(entry / "serial")
            or (_usb_serial(real) if bus == "usb" else ""),
            bus=bus,
            logical_sector_size=_int(entry / "queue" / "logical_block_size", 512),
            removable=_read(entry / "removable") == "1",
            read_only=_read(entry / "ro") == "1",
            by_id=sorted(self.by_id.get(device, [])),
        )
        if name.startswith("loop"):
            # Loop devices have no serial; the backing file names them for tests and logs.
            info.model = info.model or "loop"
            info.serial = info.serial or os.path.basename(_read(entry / "loop" / "backing_file"))
        devnum = self.devnums.get(name, "")
        info.mountpoints = self._mountpoints(devnum)
        info.fstype = props.get("ID_FS_TYPE", "") or self._fstype(devnum)
        info.swap = bool(devnum) and devnum in self.swaps
        info.holders = [h.name for h in _entries(entry / "holders")]
        info.stacked = self.stacked.get(name, [])
        info.holds_source = name in self.source_disks
        info.is_boot_medium = name in self.boot_disks
        info.partitions = self._partitions(name)
        info.busy_installer = next((p for p in map(_writer_pid, info.partitions) if p), 0)
        info.in_use = _in_use(info)
        return info

    def _partitions(self, name: str) -> list[PartitionInfo]:
        parts = self.partitions.get(name, [])
        props = {f"/dev/{p.name}": _udev_props(self.context, p) for p in parts}
        if self.live and not all(props.values()):
            props.update(_blkid([f"/dev/{p.name}" for p in parts]))
        result = []
        for part in parts:
            path = f"/dev/{part.name}"
            pprops = props.get(path, {})
            devnum = self.devnums.get(part.name, "")
            mountpoints = self._mountpoints(devnum)
            result.append(
                PartitionInfo(
                    path=path,
                    number=_int(part / "partition"),
                    size=_int(part / "size") * SECTOR,
                    label=pprops.get("ID_PART_ENTRY_NAME", pprops.get("PART_ENTRY_NAME", "")),
                    fstype=pprops.get("ID_FS_TYPE", pprops.get("TYPE", "")) or self._fstype(devnum),
                    mountpoint=mountpoints[0] if mountpoints else "",
                    mountpoints=mountpoints,
                    swap=bool(devnum) and devnum in self.swaps,
                    holders=[h.name for h in _entries(part / "holders")],
                )
            )
            result[-1].in_use = _partition_in_use(result[-1])
        return result


def _writer_pid(part: PartitionInfo) -> int:
    """The live installer process that has this partition mounted (it is writing the disk), or 0."""
    for mountpoint in part.mountpoints:
        owner = owner_pid(mountpoint)
        if owner is not None and alive(owner):
            return owner
    return 0


def _partition_in_use(part: PartitionInfo) -> str:
    """Why the installer may not write the partition's disk because of it, or ""."""
    if owner := _writer_pid(part):
        return _("another Engine installer (pid {pid}) is writing it").format(pid=owner)
    if part.mountpoint:
        return _("partition {path} is mounted at {mount}").format(
            path=part.path, mount=part.mountpoint
        )
    if part.swap:
        return _("partition {path} is active swap").format(path=part.path)
    if part.holders:
        return _("partition {path} is held by {holders}").format(
            path=part.path, holders=_held(part.holders)
        )
    return ""


def _in_use(disk: DiskInfo) -> str:
    """Why the installer may not write the disk: a mount, swap or a holder, or ""."""
    reasons = [part.in_use for part in disk.partitions if part.in_use]
    if disk.mountpoints:
        mount = disk.mountpoints[0]
        reasons.insert(0, _("{path} is mounted at {mount}").format(path=disk.path, mount=mount))
    if disk.swap:
        reasons.insert(0, _("{path} is active swap").format(path=disk.path))
    if disk.holders:
        held = _held(disk.holders)
        reasons.insert(0, _("{path} is held by {holders}").format(path=disk.path, holders=held))
    return reasons[0] if reasons else ""


def _held(holders: list[str]) -> str:
    return _("{names} (LVM, RAID or encryption)").format(names=", ".join(sorted(holders)))


def probe_disks(source: Path | None = None, root: Path = LIVE) -> list[DiskInfo]:
    """Every whole disk with a medium (loop devices included: tests use them), except the
    boot medium's own loop devices (_Machine.medium_loop).

    source is the payload or ISO being read (its disk is the boot medium); root points the
    reads at a recorded tree."""
    machine = _Machine(root, source)
    disks = []
    for name in machine.candidates():
        if backing := machine.medium_loop(name):
            log.info("/dev/%s not listed: it is part of the boot medium (%s)", name, backing)
        elif disk := machine.disk(name):
            disks.append(disk)
    return disks


def _disk_name(path: str) -> str:
    """The kernel name of the whole disk a path names; UserError when it is none."""
    real = resolve_disk_path(path)
    if not real.startswith("/dev/"):
        raise UserError(f"{path} is not a block device: name a whole disk such as /dev/sda")
    name = os.path.basename(real)
    if not (LIVE / "sys" / "block" / name).exists():
        if Path(f"/sys/class/block/{name}/partition").exists():
            raise UserError(
                f"{path} is a partition, not a whole disk: name the disk itself (see lsblk)"
            )
        raise UserError(f"{path} is not a block device: name a whole disk such as /dev/sda")
    if not _int(LIVE / "sys" / "block" / name / "size"):
        raise UserError(f"{path} has no medium (size 0): attach or insert the disk first")
    return name


def _named_disk(machine: _Machine, name: str, path: str) -> DiskInfo:
    disk = machine.disk(name)
    if disk is None:
        raise UserError(f"{path} vanished while it was probed: attach the disk and try again")
    return disk


def probe_disk(path: str, source: Path | None = None) -> DiskInfo:
    """One disk by path or by-id link; UserError when it is missing or not a whole disk."""
    name = _disk_name(path)  # the precise sentence before anything else is read
    return _named_disk(_Machine(LIVE, source, wait=[name]), name, path)


def probe_machine(
    root: Path = LIVE, source: Path | None = None, only: list[str] | None = None
) -> MachineSnapshot:
    """The one machine probe: hardware facts and every disk (or only the named ones), read
    only. root points the reads at a recorded sysfs/procfs tree (tests); source is the payload
    or ISO being installed (its disk is the boot medium)."""
    from engine_installer.machine.hardware import disk_controller, probe_hardware

    snapshot = probe_hardware(root)
    if only and root == LIVE:
        names = [_disk_name(path) for path in only]
        machine = _Machine(root, source)
        disks = [_named_disk(machine, name, path) for name, path in zip(names, only, strict=True)]
    else:
        disks = probe_disks(source, root)
        if only:
            disks = [disk for disk in disks if disk.path in only]
    for disk in disks:
        if not disk.controller:
            disk.controller = disk_controller(root, os.path.basename(disk.path))
    snapshot.disks = disks
    return snapshot


def booted_engine_disk() -> str | None:
    """The Engine disk this system runs from: the disk whose slot partition is mounted as /
    (None in a live system, a rescue shell, or anything that is not an installed Engine)."""
    machine = _Machine()
    partition = machine.names.get(machine._path_devnum("/"), "")
    disk = machine.parent.get(partition)
    if not disk:
        return None
    path = f"/dev/{partition}"
    label = _blkid([path]).get(path, {}).get("PART_ENTRY_NAME", "")
    return f"/dev/{disk}" if label in SLOT_LABELS.values() else None
