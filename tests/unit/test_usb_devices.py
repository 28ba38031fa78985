"""engine-usb's listing rules over the machine probe, on a recorded machine (sysfs tree,
mountinfo, swaps) and on this machine."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from engine_installer.base.errors import RefusedError, UserError
from engine_installer.usb import devices
from engine_installer.usb.confirm import confirm_erase
from tests.sysfs_tree import ATA, USB, VIRTUAL, add_disk, mount, swap, usb_port

ISO = "/media/tech/ISOS/engine-5.0.iso"


def fake_machine(root: Path) -> Path:
    """A laptop with a system SSD and a row of USB disks, each refused for one reason."""
    add_disk(root, "sda", "8:0", ATA, 512, model="Samsung SSD", parts={"sda1": ("8:1", [])})
    add_disk(
        root,
        "sdb",
        "8:16",
        f"{USB}/2-1:1.0/host6/target6:0:0/6:0:0:0",
        16,
        removable=True,
        model="Cruzer Blade",
        vendor="SanDisk",
        parts={"sdb1": ("8:17", [])},
        usb_serial="4C530001",
    )
    add_disk(root, "sdc", "8:32", usb_port(1), parts={"sdc2": ("8:34", ["dm-1"])})
    add_disk(root, "sdd", "8:48", usb_port(2), removable=True, ro=True)
    add_disk(root, "sde", "8:64", usb_port(3), parts={"sde1": ("8:65", [])})
    add_disk(root, "sdf", "8:80", usb_port(4), parts={"sdf1": ("8:81", [])})
    add_disk(root, "sdg", "8:96", usb_port(5), parts={"sdg2": ("8:98", ["dm-0"])})
    add_disk(root, "sdh", "8:112", usb_port(6), size_gb=0, removable=True)  # empty reader
    add_disk(root, "sdi", "8:128", usb_port(7), size_gb=256, model="Big Disk")
    add_disk(root, "nvme0n1", "259:0", "devices/pci0000:00/0000:00:1d.0/nvme/nvme0")
    add_disk(root, "dm-0", "254:0", VIRTUAL, slaves=["sdg2"], dm_name="vg-home")
    add_disk(root, "dm-1", "254:1", VIRTUAL, slaves=["sdc2"], dm_name="luks-stick")
    add_disk(root, "zram0", "252:0", VIRTUAL)
    add_disk(root, "loop3", "7:3", VIRTUAL, size_gb=1, backing_file="/var/lib/disk.img")
    mount(root, "8:1", "/", "ext4", "/dev/sda1")
    mount(root, "8:17", "/media/tech/STICK", "vfat", "/dev/sdb1")
    mount(root, "8:65", "/media/tech/ISOS", "exfat", "/dev/sde1")
    mount(root, "254:0", "/home", "ext4", "/dev/mapper/vg-home")
    swap(root, "/dev/sdf1")
    return root


def scan(root: Path, iso: str | None = ISO) -> dict[str, object]:
    return {disk.path: disk for disk in devices.scan(Path(iso) if iso else None, root=root)}


def test_facts_from_the_machine_probe(tmp_path: Path) -> None:
    disks = scan(fake_machine(tmp_path))
    assert "/dev/zram0" not in disks and "/dev/dm-0" not in disks  # never disks to write
    assert "/dev/sdh" not in disks  # an empty card reader has no medium
    assert disks["/dev/sdb"].bus == "usb" and disks["/dev/sda"].bus == "ata"
    assert disks["/dev/nvme0n1"].bus == "nvme" and disks["/dev/loop3"].bus == "loop"
    stick = disks["/dev/sdb"]
    assert stick.serial == "4C530001"  # the USB device's iSerial, without udev
    assert (stick.vendor, stick.model, stick.size) == ("SanDisk", "Cruzer Blade", 16 * 10**9)
    assert stick.removable and not stick.read_only
    assert [p.path for p in disks["/dev/sdc"].partitions] == ["/dev/sdc2"]
    assert disks["/dev/sdc"].partitions[0].holders == ["dm-1"]
    assert [(s.path, s.mountpoints) for s in disks["/dev/sdg"].stacked] == [
        ("/dev/dm-0", ["/home"])
    ]
    assert disks["/dev/sdf"].partitions[0].swap and disks["/dev/sde"].holds_source


def test_refusal_reasons(tmp_path: Path) -> None:
    disks = scan(fake_machine(tmp_path))
    assert disks["/dev/sda"].in_use == "it holds / of the running system"
    assert "LVM, RAID or dm-crypt (held by dm-1)" in disks["/dev/sdc"].in_use
    assert disks["/dev/sdd"].in_use == "it is read-only (check the stick's write-protect switch)"
    assert disks["/dev/sde"].in_use == "the ISO file itself lives on it"
    assert disks["/dev/sdf"].in_use == "it holds active swap"
    assert disks["/dev/sdg"].in_use == "it holds /home of the running system"  # through dm-0
    assert disks["/dev/sdb"].in_use == ""
    assert [(p.path, p.mountpoint, p.fstype) for p in disks["/dev/sdb"].partitions] == [
        ("/dev/sdb1", "/media/tech/STICK", "vfat")
    ]
    assert scan(tmp_path, iso=None)["/dev/sde"].in_use == ""  # only the ISO being written


def test_list_shows_only_safe_sticks(tmp_path: Path) -> None:
    sticks = devices.list_sticks(devices.scan(Path(ISO), root=fake_machine(tmp_path)))
    # sdb: a stick a desktop mounted is listed (the writer unmounts it); sdi: a big USB disk
    # is listed (write asks twice); sdh: an empty card reader (size 0) is not.
    assert [d.path for d in sticks] == ["/dev/sdb", "/dev/sdi"]


def test_big_disk_needs_its_name_typed_again(tmp_path: Path) -> None:
    big = scan(fake_machine(tmp_path))["/dev/sdi"]
    assert big.size > devices.BIG_STICK
    questions: list[str] = []
    answers = iter(["yes", "sdi"])

    def ask(question: str) -> str:
        questions.append(question)
        return next(answers)

    out = io.StringIO()
    confirm_erase([big], "engine.iso", False, ask, out, True)
    assert len(questions) == 2 and "Type its name again" in questions[1]
    assert "warning: /dev/sdi is 256.0 GB" in out.getvalue()


def test_whole_disk_filesystem_shows_as_mounted(tmp_path: Path) -> None:
    add_disk(tmp_path, "sdx", "8:240", f"{USB}/2-1:1.0/host6/t/6:0:0:0", removable=True)
    mount(tmp_path, "8:240", "/mnt/my stick", "ext4", "/dev/sdx")
    [disk] = devices.scan(root=tmp_path)
    [whole] = devices.mounted_partitions(disk)
    assert (whole.path, whole.number, whole.mountpoint, whole.fstype) == (
        "/dev/sdx",
        0,
        "/mnt/my stick",
        "ext4",
    )
    assert disk.in_use == "" and devices.list_sticks([disk]) == [disk]


def test_live_system_boot_medium_is_never_listed(tmp_path: Path) -> None:
    add_disk(tmp_path, "sdb", "8:16", usb_port(1), parts={"sdb1": ("8:17", [])})
    mount(tmp_path, "8:17", "/run/live/medium", "iso9660", "/dev/sdb1")
    [disk] = devices.scan(root=tmp_path)
    assert disk.is_boot_medium and disk.in_use == "it holds /run/live/medium of the running system"
    assert devices.list_sticks([disk]) == []


def test_live_medium_loop_mounted_from_an_iso_file_on_a_stick(tmp_path: Path) -> None:
    """live-boot's fromiso=: the medium is a loop device over an ISO file on a stick."""
    add_disk(tmp_path, "sdb", "8:16", usb_port(1), removable=True, parts={"sdb1": ("8:17", [])})
    add_disk(tmp_path, "loop0", "7:0", VIRTUAL, 1, backing_file="/run/live/findiso/engine.iso")
    mount(tmp_path, "8:17", "/run/live/findiso", "vfat", "/dev/sdb1")
    mount(tmp_path, "7:0", "/run/live/medium", "iso9660", "/dev/loop0")
    disks = scan(tmp_path, iso=None)
    assert disks["/dev/sdb"].is_boot_medium
    assert disks["/dev/sdb"].in_use == "it holds the medium the live system runs from"
    assert devices.list_sticks(list(disks.values())) == []


def test_iso_on_btrfs_or_inside_a_loop_mounted_filesystem(tmp_path: Path) -> None:
    # btrfs: mountinfo has an anonymous device number; the mount source names the partition.
    add_disk(tmp_path, "sdj", "8:144", usb_port(1), removable=True, parts={"sdj1": ("8:145", [])})
    mount(tmp_path, "0:45", "/srv", "btrfs", "/dev/sdj1")
    assert scan(tmp_path, iso="/srv/isos/engine.iso")["/dev/sdj"].in_use == (
        "the ISO file itself lives on it"
    )
    # A filesystem image on a stick, loop-mounted, holding the ISO: both disks hold it.
    add_disk(tmp_path, "sdk", "8:160", usb_port(2), removable=True, parts={"sdk1": ("8:161", [])})
    add_disk(tmp_path, "loop5", "7:5", VIRTUAL, 1, backing_file="/media/k/images/fs.img")
    mount(tmp_path, "8:161", "/media/k", "exfat", "/dev/sdk1")
    mount(tmp_path, "7:5", "/mnt/images", "ext4", "/dev/loop5")
    disks = scan(tmp_path, iso="/mnt/images/engine.iso")
    assert disks["/dev/sdk"].in_use == "the ISO file itself lives on it"
    assert disks["/dev/loop5"].in_use == "the ISO file itself lives on it"
    assert disks["/dev/sdj"].in_use == ""


def test_swap_file_and_swap_on_dm_crypt(tmp_path: Path) -> None:
    add_disk(tmp_path, "sdb", "8:16", usb_port(1), removable=True, parts={"sdb1": ("8:17", [])})
    add_disk(tmp_path, "sdc", "8:32", usb_port(2), removable=True, parts={"sdc1": ("8:33", [])})
    add_disk(tmp_path, "dm-2", "254:2", VIRTUAL, 1, slaves=["sdc1"], dm_name="cryptswap")
    (tmp_path / "sys/block/sdc/sdc1/holders/dm-2").mkdir()
    mount(tmp_path, "8:17", "/media/tech/data", "ext4", "/dev/sdb1")
    swap(tmp_path, "/media/tech/data/swap\\040file", kind="file")
    swap(tmp_path, "/dev/mapper/cryptswap")
    disks = scan(tmp_path, iso=None)
    assert disks["/dev/sdb"].in_use == "it holds active swap"
    assert disks["/dev/sdc"].in_use == "it holds active swap"


def test_resolve_target_words(tmp_path: Path) -> None:
    disks = devices.scan(Path(ISO), root=fake_machine(tmp_path))
    with pytest.raises(UserError, match="does not exist"):
        devices.resolve_target(str(tmp_path / "no-such-stick"), disks, False)
    with pytest.raises(UserError, match="is not a block device"):
        devices.resolve_target(str(tmp_path), disks, False)


def _devnum(path: str, node: bool) -> str:
    st = os.stat(path)
    number = st.st_rdev if node else st.st_dev
    return f"{os.major(number)}:{os.minor(number)}"


def test_real_machine_never_offers_the_root_disk() -> None:
    root = _devnum("/", node=False)  # the device / lives on (none for an overlay or 9p root)
    disks = devices.scan()
    for disk in disks:
        nodes = [disk.path, *(p.path for p in disk.partitions), *(s.path for s in disk.stacked)]
        if root in (_devnum(node, node=True) for node in nodes if os.path.exists(node)):
            assert disk.in_use == "it holds / of the running system"
            with pytest.raises(RefusedError, match="it holds / of the running system"):
                devices.resolve_target(disk.path, disks, allow_non_removable=True)
            assert disk not in devices.list_sticks(disks)
