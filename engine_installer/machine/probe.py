"""Probe block devices into DiskInfo records (read-only).

sysfs gives the disk attributes on every machine; pyudev adds by-id links, serials and
partition properties when a udev daemon runs. Without udev, partition names and filesystem
types come from `blkid -p` (libblkid reads the GPT and superblocks itself).
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from pathlib import Path

from engine_installer.base.errors import UserError
from engine_installer.base.i18n import _
from engine_installer.machine.ownership import alive, owner_pid
from engine_installer.machine.snapshot import DiskInfo, MachineSnapshot, PartitionInfo
from engine_installer.ondisk.layout import SLOT_LABELS

log = logging.getLogger("engine_installer")
SYS_BLOCK = Path("/sys/block")
UDEV_CONTROL = Path("/run/udev/control")  # exists while a udev daemon runs
UDEV_DATA = Path("/run/udev/data")  # udev's database: b<major>:<minor> per block device seen
UDEV_WAIT_SECONDS = 60.0
BY_ID = Path("/dev/disk/by-id")
LIVE_MEDIUM = Path("/run/live/medium")
LIVE_ROOT = "/run/live/"  # live-boot's medium, layers and toram copies live below it
# Device-mapper, RAM disks, optical drives and zram are never install targets.
SKIP_PREFIXES = ("ram", "dm-", "md", "sr", "zram", "fd", "nbd")


def _read(path: Path, default: str = "") -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return default


def resolve_disk_path(path: str) -> str:
    """Resolve /dev/disk/by-id/... links; refuse what is missing."""
    if not os.path.exists(path):
        raise UserError(f"{path} does not exist: name a disk such as /dev/sda (see lsblk)")
    return os.path.realpath(path)


def _entries(path: Path) -> list[Path]:
    """A sysfs directory's entries; [] when it vanished (a disk pulled, a table re-read)."""
    try:
        return list(path.iterdir())
    except OSError:
        return []


def _mounts() -> dict[str, str]:
    """major:minor → first mount point, from /proc/self/mountinfo (exact device numbers)."""
    result: dict[str, str] = {}
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return result
    for line in lines:
        fields = line.split()
        if len(fields) > 4:
            # Mount points escape spaces as \040.
            result.setdefault(fields[2], fields[4].replace("\\040", " "))
    return result


def _swaps() -> set[str]:
    names = set()
    for line in _read(Path("/proc/swaps")).splitlines()[1:]:
        if line.split():
            names.add(os.path.realpath(line.split()[0]))
    return names


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
    except Exception:  # noqa: BLE001
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
            key, _, value = line.partition("=")
            props[key] = value
        result[path] = props
    return result


def _bus(name: str, sys_path: Path, props: dict[str, str]) -> str:
    if props.get("ID_BUS"):
        return props["ID_BUS"]
    if name.startswith("loop"):
        return "loop"
    if name.startswith("nvme"):
        return "nvme"
    if name.startswith("vd"):
        return "virtio"
    real = os.path.realpath(sys_path / "device")
    for bus in ("usb", "ata", "virtio", "mmc"):
        if f"/{bus}" in real:
            return bus
    return "scsi" if name.startswith("sd") else ""


def _by_id_links(device: str) -> list[str]:
    if not BY_ID.is_dir():
        return []
    return sorted(str(link) for link in BY_ID.iterdir() if os.path.realpath(link) == device)


def _whole_disk_of_devnum(devnum: int) -> str | None:
    """The /dev name of the whole disk holding a block device number (partition → parent)."""
    sys_dev = Path(f"/sys/dev/block/{os.major(devnum)}:{os.minor(devnum)}")
    if not sys_dev.exists():
        return None
    real = Path(os.path.realpath(sys_dev))
    if (real / "partition").exists():
        real = real.parent
    return f"/dev/{real.name}"


def boot_medium_disks(source: Path | None = None) -> set[str]:
    """Disks backing the live medium or the payload source (a loop-mounted ISO counts too)."""
    disks: set[str] = set()
    candidates = [LIVE_MEDIUM] if LIVE_MEDIUM.is_mount() else []
    if source is not None and source.exists():
        candidates.append(source)
    for path in candidates:
        try:
            devnum = os.stat(path).st_dev
        except OSError:
            continue
        disk = _whole_disk_of_devnum(devnum)
        if not disk:
            continue
        disks.add(disk)
        # An ISO loop-mounted from a file: the disk holding that file is the medium too.
        backing = _read(SYS_BLOCK / Path(disk).name / "loop" / "backing_file")
        if backing and os.path.exists(backing):
            parent = _whole_disk_of_devnum(os.stat(backing).st_dev)
            if parent:
                disks.add(parent)
    if source is not None and source.is_file():
        # An ISO or image file that is not mounted: its own disk is off limits too.
        parent = _whole_disk_of_devnum(os.stat(source).st_dev)
        if parent:
            disks.add(parent)
    return disks


def is_ram_medium(disk: str) -> bool:
    """A boot medium that is no disk at all: the firmware's RAM disk holding the ISO after a
    UEFI HTTP boot (pmem), or a loop device over an ISO downloaded into RAM (PXE, fetch=)."""
    name = Path(disk).name
    if name.startswith("pmem"):
        return True
    backing = _read(SYS_BLOCK / name / "loop" / "backing_file")
    if not backing:
        return False
    try:
        devnum = os.stat(backing.removesuffix(" (deleted)")).st_dev
    except OSError:
        return True  # gone with the initramfs that downloaded it
    return _whole_disk_of_devnum(devnum) is None


def _probe(name: str, context, mounts: dict[str, str], swaps: set[str], boot: set[str]) -> DiskInfo:
    sys_path = SYS_BLOCK / name
    device = f"/dev/{name}"
    props = _udev_props(context, sys_path)
    size = int(_read(sys_path / "size", "0") or "0") * 512
    info = DiskInfo(
        path=device,
        size=size,
        model=props.get("ID_MODEL", "").replace("_", " ") or _read(sys_path / "device" / "model"),
        vendor=_read(sys_path / "device" / "vendor") or props.get("ID_VENDOR", ""),
        serial=props.get("ID_SERIAL_SHORT", "")
        or _read(sys_path / "device" / "serial")
        or _read(sys_path / "serial"),
        bus=_bus(name, sys_path, props),
        logical_sector_size=int(_read(sys_path / "queue" / "logical_block_size", "512")),
        removable=_read(sys_path / "removable") == "1",
        read_only=_read(sys_path / "ro") == "1",
        by_id=_by_id_links(device),
    )
    if name.startswith("loop"):
        # Loop devices have no serial; the backing file names them for tests and logs.
        info.model = info.model or "loop"
        info.serial = info.serial or os.path.basename(_read(sys_path / "loop" / "backing_file"))
    parts = sorted(
        (p for p in _entries(sys_path) if (p / "partition").exists()),
        key=lambda p: int(_read(p / "partition", "0") or "0"),
    )
    part_props: dict[str, dict[str, str]] = {}
    if context is not None:
        for part in parts:
            part_props[f"/dev/{part.name}"] = _udev_props(context, part)
    if not all(part_props.get(f"/dev/{p.name}") for p in parts):
        part_props.update(_blkid([f"/dev/{p.name}" for p in parts]))
    reasons = []
    for part in parts:
        path = f"/dev/{part.name}"
        pprops = part_props.get(path, {})
        devnum = _read(part / "dev")
        mountpoint = mounts.get(devnum, "")
        busy = ""
        owner = owner_pid(mountpoint) if mountpoint else None
        if owner is not None and alive(owner):
            busy = _("another Engine installer (pid {pid}) is writing it").format(pid=owner)
            info.busy_installer = owner
        elif mountpoint:
            busy = _("partition {path} is mounted at {mount}").format(path=path, mount=mountpoint)
        elif path in swaps:
            busy = _("partition {path} is active swap").format(path=path)
        elif _entries(part / "holders"):
            busy = _("partition {path} is held by {holders}").format(
                path=path, holders=_holders(part)
            )
        info.partitions.append(
            PartitionInfo(
                path=path,
                number=int(_read(part / "partition", "0") or "0"),
                size=int(_read(part / "size", "0") or "0") * 512,
                label=pprops.get("ID_PART_ENTRY_NAME", pprops.get("PART_ENTRY_NAME", "")),
                fstype=pprops.get("ID_FS_TYPE", pprops.get("TYPE", "")),
                mountpoint=mountpoint,
                in_use=busy,
            )
        )
        if busy:
            reasons.append(busy)
    if mounts.get(_read(sys_path / "dev")):
        mount = mounts[_read(sys_path / "dev")]
        reasons.insert(0, _("{path} is mounted at {mount}").format(path=device, mount=mount))
    if device in swaps:
        reasons.insert(0, _("{path} is active swap").format(path=device))
    if _entries(sys_path / "holders"):
        reasons.insert(
            0, _("{path} is held by {holders}").format(path=device, holders=_holders(sys_path))
        )
    info.in_use = reasons[0] if reasons else ""
    info.is_boot_medium = device in boot
    return info


def _holders(sys_path: Path) -> str:
    names = sorted(h.name for h in _entries(sys_path / "holders"))
    return _("{names} (LVM, RAID or encryption)").format(names=", ".join(names))


def _is_candidate(name: str) -> bool:
    if name.startswith(SKIP_PREFIXES):
        return False
    # Unattached loop devices have size 0.
    return _read(SYS_BLOCK / name / "size", "0") != "0"


def _devnums(name: str) -> list[str]:
    """major:minor of a disk and of each of its partitions (none when it has vanished)."""
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


def medium_loop_backing(name: str, mounts: dict[str, str]) -> str:
    """What makes loop device `name` part of the live medium, or ''.

    live-boot stacks the medium's squashfs layers on loop devices (backed by
    /run/live/medium/live/*.squashfs, or a copy under /run/live/ with toram) and mounts them
    under /run/live/rootfs/. They are never targets and nothing a technician can act on, so
    the target list does not show them (the log does). Loop devices elsewhere (tests, a
    technician's own image) are listed as usual."""
    if not name.startswith("loop"):
        return ""
    backing = _read(SYS_BLOCK / name / "loop" / "backing_file")
    if backing.startswith(LIVE_ROOT):
        return backing
    mount = mounts.get(_read(SYS_BLOCK / name / "dev"), "")
    return f"mounted at {mount}" if mount.startswith(LIVE_ROOT) else ""


def probe_disks(source: Path | None = None) -> list[DiskInfo]:
    """Every whole disk with a medium (loop devices included: tests use them), except the
    boot medium's own loop devices (medium_loop_backing)."""
    context = _udev_context()
    names = sorted(n.name for n in SYS_BLOCK.iterdir() if _is_candidate(n.name))
    if context is not None:
        wait_for_udev(names)
    mounts, swaps, boot = _mounts(), _swaps(), boot_medium_disks(source)
    # A network boot's medium lives in RAM: listing it would name a disk that does not exist.
    hidden = {disk for disk in boot if is_ram_medium(disk)}
    names = [name for name in names if f"/dev/{name}" not in hidden]
    disks = []
    for name in names:
        if not (SYS_BLOCK / name).exists():
            log.info("/dev/%s vanished while probing; skipped", name)
            continue
        backing = medium_loop_backing(name, mounts)
        if backing:
            log.info("/dev/%s not listed: it is part of the boot medium (%s)", name, backing)
            continue
        info = _probe(name, context, mounts, swaps, boot)
        if info.size:
            disks.append(info)
    return disks


def probe_disk(path: str, source: Path | None = None) -> DiskInfo:
    """One disk by path or by-id link; UserError when it is missing or not a whole disk."""
    real = resolve_disk_path(path)
    if not real.startswith("/dev/"):
        raise UserError(f"{path} is not a block device: name a whole disk such as /dev/sda")
    name = os.path.basename(real)
    sys_path = SYS_BLOCK / name
    if not sys_path.exists():
        if Path(f"/sys/class/block/{name}/partition").exists():
            raise UserError(
                f"{path} is a partition, not a whole disk: name the disk itself (see lsblk)"
            )
        raise UserError(f"{path} is not a block device: name a whole disk such as /dev/sda")
    if _read(sys_path / "size", "0") == "0":
        raise UserError(f"{path} has no medium (size 0): attach or insert the disk first")
    context = _udev_context()
    if context is not None:
        wait_for_udev([name])
    return _probe(name, context, _mounts(), _swaps(), boot_medium_disks(source))


def probe_machine(
    root: Path = Path("/"), source: Path | None = None, only: list[str] | None = None
) -> MachineSnapshot:
    """The one machine probe: hardware facts and every disk (or only the named ones), read
    only. root points the reads at a recorded sysfs/procfs tree (tests); source is the payload
    or ISO being installed (its disk is the boot medium)."""
    from engine_installer.machine.hardware import disk_controller, probe_hardware, sysfs_disks

    snapshot = probe_hardware(root)
    if root != Path("/"):
        disks = sysfs_disks(root)
    elif only:
        disks = [probe_disk(path, source) for path in only]
    else:
        disks = probe_disks(source)
    for disk in disks:
        if not disk.controller:
            disk.controller = disk_controller(root, os.path.basename(disk.path))
    snapshot.disks = disks
    return snapshot


def booted_engine_disk() -> str | None:
    """The Engine disk this system runs from: the disk whose slot partition is mounted as /
    (None in a live system, a rescue shell, or anything that is not an installed Engine)."""
    try:
        devnum = os.stat("/").st_dev
    except OSError:
        return None
    sys_dev = Path(f"/sys/dev/block/{os.major(devnum)}:{os.minor(devnum)}")
    if not (sys_dev / "partition").exists():
        return None
    partition = f"/dev/{Path(os.path.realpath(sys_dev)).name}"
    label = _blkid([partition]).get(partition, {}).get("PART_ENTRY_NAME", "")
    if label not in SLOT_LABELS.values():
        return None
    return _whole_disk_of_devnum(devnum)
