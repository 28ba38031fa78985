"""A recorded machine for the probe's unit tests: sys/block, proc/self/mountinfo and proc/swaps
under a root directory, laid out as the kernel does (no root, no real devices)."""

from __future__ import annotations

from pathlib import Path

USB = "devices/pci0000:00/0000:00:14.0/usb2/2-1"  # a USB port; sticks hang below it
ATA = "devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0"
VIRTUAL = "devices/virtual"


def usb_port(port: int) -> str:
    """The SCSI device path of a USB mass-storage stick on port `port` of bus 3."""
    return f"devices/pci0000:00/0000:00:14.0/usb3/3-{port}/3-{port}:1.0/host{port}/t/0:0:0:0"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def add_disk(
    root: Path,
    name: str,
    devnum: str,
    parent: str,
    size_gb: float = 16,
    *,
    removable: bool = False,
    ro: bool = False,
    model: str = "",
    vendor: str = "",
    parts: dict[str, tuple[str, list[str]]] | None = None,
    holders: list[str] | None = None,
    slaves: list[str] | None = None,
    usb_serial: str = "",
    sector_size: int = 512,
    dm_name: str = "",
    backing_file: str = "",
) -> Path:
    """sys/block/NAME -> ../PARENT/block/NAME, like the kernel. parts: partition name →
    (devnum, holders); slaves: what a dm/md device is built on. Returns the device's dir."""
    sys_root = root / "sys"
    real = sys_root / parent / "block" / name
    for sub in ("device", "holders", "slaves", "queue"):
        (real / sub).mkdir(parents=True, exist_ok=True)
    _write(real / "dev", devnum)
    _write(real / "size", str(int(size_gb * 1e9) // 512))
    _write(real / "removable", "1" if removable else "0")
    _write(real / "ro", "1" if ro else "0")
    _write(real / "queue" / "logical_block_size", str(sector_size))
    if model:
        _write(real / "device" / "model", model + "   ")  # sysfs pads SCSI strings
    if vendor:
        _write(real / "device" / "vendor", vendor + "  ")
    if usb_serial:
        usb_dev = sys_root / parent.split("/host")[0].rsplit("/", 1)[0]
        _write(usb_dev / "idVendor", "0781")
        _write(usb_dev / "serial", usb_serial)
    if dm_name:
        _write(real / "dm" / "name", dm_name)
    if backing_file:
        _write(real / "loop" / "backing_file", backing_file)
    for holder in holders or []:
        (real / "holders" / holder).mkdir()
    for slave in slaves or []:
        (real / "slaves" / slave).mkdir()
    for part, (part_devnum, part_holders) in (parts or {}).items():
        number = len(part) - len(part.rstrip("0123456789"))
        (real / part / "holders").mkdir(parents=True)
        _write(real / part / "partition", part[-number:])
        _write(real / part / "dev", part_devnum)
        _write(real / part / "size", str(int(size_gb * 1e9) // 1024))
        for holder in part_holders:
            (real / part / "holders" / holder).mkdir()
    (sys_root / "block").mkdir(exist_ok=True)
    (sys_root / "block" / name).symlink_to(real)
    return real


def mount(root: Path, devnum: str, mountpoint: str, fstype: str, source: str = "none") -> None:
    """One line of proc/self/mountinfo (a space in the mount point escaped as the kernel does)."""
    path = root / "proc" / "self" / "mountinfo"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = path.read_text().splitlines() if path.exists() else []
    point = mountpoint.replace(" ", "\\040")
    lines.append(f"{30 + len(lines)} 1 {devnum} / {point} rw,relatime - {fstype} {source} rw")
    path.write_text("\n".join(lines) + "\n")


def swap(root: Path, path: str, kind: str = "partition") -> None:
    """One active swap area in proc/swaps."""
    swaps = root / "proc" / "swaps"
    swaps.parent.mkdir(parents=True, exist_ok=True)
    if not swaps.exists():
        swaps.write_text("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n")
    with open(swaps, "a") as handle:
        handle.write(f"{path}\t\t\t\t{kind}\t\t1048572\t\t0\t\t-2\n")
