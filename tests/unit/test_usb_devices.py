"""engine-usb list rules on a fake sysfs tree and a recorded usage snapshot."""

from __future__ import annotations

from pathlib import Path

from engine_installer.usb import devices
from engine_installer.usb.devices import Usage

USB = "devices/pci0000:00/0000:00:14.0/usb2/2-1"


def add_disk(
    sys_root: Path,
    name: str,
    devnum: str,
    parent: str,
    size_gb: float = 16,
    removable: bool = False,
    ro: bool = False,
    model: str = "",
    vendor: str = "",
    parts: dict[str, tuple[str, list[str]]] | None = None,
    slaves: list[str] | None = None,
    usb_serial: str = "",
) -> None:
    """Lay out /sys/block/NAME -> ../PARENT/block/NAME like the kernel does."""
    real = sys_root / parent / "block" / name
    (real / "device").mkdir(parents=True)
    (real / "holders").mkdir()
    (real / "slaves").mkdir()
    (real / "queue").mkdir()
    (real / "dev").write_text(devnum + "\n")
    (real / "size").write_text(f"{int(size_gb * 1e9) // 512}\n")
    (real / "removable").write_text("1\n" if removable else "0\n")
    (real / "ro").write_text("1\n" if ro else "0\n")
    (real / "queue" / "logical_block_size").write_text("512\n")
    if model:
        (real / "device" / "model").write_text(model + "   \n")
    if vendor:
        (real / "device" / "vendor").write_text(vendor + "  \n")
    if usb_serial:
        usb_dev = sys_root / parent.split("/host")[0]
        (usb_dev / "idVendor").write_text("0781\n")
        (usb_dev / "serial").write_text(usb_serial + "\n")
    for slave in slaves or []:
        (real / "slaves" / slave).mkdir()
    for part, (part_devnum, holders) in (parts or {}).items():
        (real / part / "holders").mkdir(parents=True)
        (real / part / "partition").write_text("1\n")
        (real / part / "dev").write_text(part_devnum + "\n")
        (real / part / "size").write_text(f"{int(size_gb * 1e9) // 1024}\n")
        for holder in holders:
            (real / part / "holders" / holder).mkdir()
    (sys_root / "block").mkdir(exist_ok=True)
    (sys_root / "block" / name).symlink_to(real)


def fake_machine(tmp_path: Path) -> tuple[Path, Usage]:
    sys_root = tmp_path / "sys"
    ata = "devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0"
    add_disk(sys_root, "sda", "8:0", ata, 512, model="Samsung SSD", parts={"sda1": ("8:1", [])})
    stick = f"{USB}/2-1:1.0/host6/target6:0:0/6:0:0:0"
    add_disk(
        sys_root,
        "sdb",
        "8:16",
        stick,
        16,
        removable=True,
        model="Cruzer Blade",
        vendor="SanDisk",
        parts={"sdb1": ("8:17", [])},
        usb_serial="4C530001",
    )
    usb = "devices/pci0000:00/0000:00:14.0/usb3/3-{}/3-{}:1.0/host{}/target/0:0:0:0"
    add_disk(sys_root, "sdc", "8:32", usb.format(1, 1, 7), parts={"sdc2": ("8:34", ["dm-1"])})
    add_disk(sys_root, "sdd", "8:48", usb.format(2, 2, 8), removable=True, ro=True)
    add_disk(sys_root, "sde", "8:64", usb.format(3, 3, 9), parts={"sde1": ("8:65", [])})
    add_disk(sys_root, "sdf", "8:80", usb.format(4, 4, 10), parts={"sdf1": ("8:81", [])})
    add_disk(sys_root, "sdg", "8:96", usb.format(5, 5, 11), parts={"sdg2": ("8:98", ["dm-0"])})
    add_disk(sys_root, "sdh", "8:112", usb.format(6, 6, 12), size_gb=0, removable=True)
    add_disk(sys_root, "sdi", "8:128", usb.format(7, 7, 13), size_gb=256, model="Big Disk")
    add_disk(sys_root, "nvme0n1", "259:0", "devices/pci0000:00/0000:00:1d.0/nvme/nvme0")
    add_disk(sys_root, "dm-0", "254:0", "devices/virtual", slaves=["sdg2"])
    add_disk(sys_root, "zram0", "252:0", "devices/virtual")
    add_disk(sys_root, "loop3", "7:3", "devices/virtual", size_gb=1)
    usage = Usage(
        mounts=[
            ("8:1", "/", "ext4"),
            ("8:17", "/media/tech/STICK", "vfat"),
            ("8:65", "/media/tech/ISOS", "exfat"),
            ("254:0", "/home", "ext4"),
        ],
        swaps=["8:81"],
        iso_devnums=["8:65"],
    )
    return sys_root, usage


def by_path(disks):
    return {disk.path: disk for disk in disks}


def test_facts_from_sysfs(tmp_path: Path) -> None:
    sys_root, usage = fake_machine(tmp_path)
    facts = {f.name: f for f in devices.read_sysfs(sys_root)}
    assert "zram0" not in facts
    assert facts["sdb"].bus == "usb" and facts["sda"].bus == "ata"
    assert facts["nvme0n1"].bus == "nvme" and facts["loop3"].bus == "loop"
    assert facts["sdb"].serial == "4C530001"  # from the USB device, without udev
    assert facts["sdb"].model == "Cruzer Blade" and facts["sdb"].vendor == "SanDisk"
    assert facts["sdb"].size == 16 * 10**9
    assert [p.name for p in facts["sdc"].partitions] == ["sdc2"]
    assert facts["dm-0"].slaves == ["sdg2"]


def test_classify_reasons(tmp_path: Path) -> None:
    sys_root, usage = fake_machine(tmp_path)
    disks = by_path(devices.classify(devices.read_sysfs(sys_root), usage))
    assert "holds / of the running system" in disks["/dev/sda"].in_use
    assert "LVM, RAID or dm-crypt (held by dm-1)" in disks["/dev/sdc"].in_use
    assert "read-only" in disks["/dev/sdd"].in_use
    assert "ISO file itself" in disks["/dev/sde"].in_use
    assert "swap" in disks["/dev/sdf"].in_use
    assert "holds /home" in disks["/dev/sdg"].in_use  # through dm-0's slaves
    assert disks["/dev/sdb"].in_use == ""
    stick = disks["/dev/sdb"]
    assert [(p.path, p.mountpoint, p.fstype) for p in stick.partitions] == [
        ("/dev/sdb1", "/media/tech/STICK", "vfat")
    ]


def test_list_shows_only_safe_sticks(tmp_path: Path) -> None:
    sys_root, usage = fake_machine(tmp_path)
    sticks = devices.list_sticks(devices.classify(devices.read_sysfs(sys_root), usage))
    # sdb: a mounted stick is listed (it will be unmounted); sdi: a big USB disk is listed
    # (write asks twice); sdh: an empty card reader (size 0) is not.
    assert [d.path for d in sticks] == ["/dev/sdb", "/dev/sdi"]


def test_whole_disk_filesystem_shows_as_mounted(tmp_path: Path) -> None:
    sys_root = tmp_path / "sys"
    add_disk(sys_root, "sdx", "8:240", f"{USB}/2-1:1.0/host6/t/6:0:0:0", removable=True)
    usage = Usage(mounts=[("8:240", "/mnt/x", "ext4")])
    [disk] = devices.classify(devices.read_sysfs(sys_root), usage)
    assert devices.mounted_partitions(disk)[0].mountpoint == "/mnt/x"
    assert disk.in_use == ""


def test_live_system_boot_medium_is_never_listed(tmp_path: Path) -> None:
    sys_root = tmp_path / "sys"
    add_disk(sys_root, "sdb", "8:16", f"{USB}/2-1:1.0/h/t/6:0:0:0", parts={"sdb1": ("8:17", [])})
    usage = Usage(mounts=[("8:17", "/run/live/medium", "iso9660")])
    [disk] = devices.classify(devices.read_sysfs(sys_root), usage)
    assert disk.is_boot_medium and disk.in_use
    assert devices.list_sticks([disk]) == []


def test_real_machine_scan_never_lists_the_root_disk() -> None:
    root_devnum = devices.devnum_of("/")
    for disk in devices.list_sticks(devices.scan()):
        assert root_devnum not in (devices.devnum_of(p.path) for p in disk.partitions)
