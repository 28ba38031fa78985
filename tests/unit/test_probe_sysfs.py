"""The machine probe against a recorded machine (sysfs tree, mountinfo, swaps): attributes,
partitions, the facts each face's policy reads, and the installer's busy reasons (no root)."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import pytest

from engine_installer.base.errors import UserError
from engine_installer.machine import probe
from engine_installer.machine.snapshot import load_snapshot
from engine_installer.ondisk.layout import partition_path
from tests.sysfs_tree import ATA, VIRTUAL, add_disk, mount, swap


@pytest.fixture
def machine(tmp_path: Path) -> Path:
    add_disk(
        tmp_path,
        "sdz",
        "8:240",
        ATA,
        2 * 1024**3 / 1e9,
        model="LAPTOP SSD",
        vendor="ATA",
        sector_size=4096,
        parts={"sdz1": ("8:241", []), "sdz2": ("8:242", [])},
    )
    add_disk(tmp_path, "loop9", "7:9", VIRTUAL, size_gb=0)  # unattached: not a disk
    return tmp_path


def test_attributes_and_partitions(machine: Path) -> None:
    [disk] = probe.probe_disks(root=machine)
    assert (disk.path, disk.size, disk.model, disk.vendor, disk.bus) == (
        "/dev/sdz",
        2 * 1024**3,
        "LAPTOP SSD",
        "ATA",
        "ata",
    )
    assert disk.logical_sector_size == 4096 and not disk.removable and not disk.read_only
    assert [(p.path, p.number) for p in disk.partitions] == [("/dev/sdz1", 1), ("/dev/sdz2", 2)]
    assert disk.in_use == "" and not disk.is_boot_medium and disk.by_id == []


def test_busy_reasons(machine: Path) -> None:
    (machine / "sys/block/sdz/sdz2/holders/dm-0").mkdir()
    [disk] = probe.probe_disks(root=machine)
    assert disk.in_use == "partition /dev/sdz2 is held by dm-0 (LVM, RAID or encryption)"
    assert disk.partitions[1].holders == ["dm-0"]
    mount(machine, "8:241", "/home", "ext4", "/dev/sdz1")
    mount(machine, "8:241", "/srv/home", "ext4", "/dev/sdz1")  # a bind mount
    [disk] = probe.probe_disks(root=machine)
    assert disk.in_use == "partition /dev/sdz1 is mounted at /home"
    assert disk.partitions[0].mountpoint == "/home"
    assert disk.partitions[0].mountpoints == ["/home", "/srv/home"]
    assert disk.partitions[0].fstype == "ext4"  # from the mount, as no blkid runs here


def test_a_running_installers_mount_names_it(machine: Path) -> None:
    """A mount of another installer that still runs says so; a dead one's is just a mount."""
    mount(machine, "8:241", f"/run/engine-mnt-{os.getpid()}-esp", "vfat", "/dev/sdz1")
    [disk] = probe.probe_disks(root=machine)
    assert (
        disk.partitions[0].in_use == f"another Engine installer (pid {os.getpid()}) is writing it"
    )
    assert disk.in_use == disk.partitions[0].in_use
    dead = _dead_pid()
    (machine / "proc/self/mountinfo").unlink()
    mount(machine, "8:242", f"/run/engine-mnt-{dead}-storage", "ext4", "/dev/sdz2")
    [disk] = probe.probe_disks(root=machine)
    assert disk.partitions[1].in_use == (
        f"partition /dev/sdz2 is mounted at /run/engine-mnt-{dead}-storage"
    )


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_swap_and_whole_disk_reasons(machine: Path) -> None:
    swap(machine, "/dev/sdz2")
    [disk] = probe.probe_disks(root=machine)
    assert disk.partitions[1].swap and disk.in_use == "partition /dev/sdz2 is active swap"
    mount(machine, "8:240", "/mnt", "vfat", "/dev/sdz")
    [disk] = probe.probe_disks(root=machine)
    assert (disk.mountpoints, disk.fstype) == (["/mnt"], "vfat")
    assert disk.in_use == "/dev/sdz is mounted at /mnt"


def test_source_and_live_medium_are_the_boot_medium(machine: Path) -> None:
    mount(machine, "8:241", "/srv", "ext4", "/dev/sdz1")
    [disk] = probe.probe_disks(root=machine, source=Path("/srv/engine-5.0.iso"))
    assert disk.is_boot_medium and disk.holds_source
    [disk] = probe.probe_disks(root=machine, source=Path("/elsewhere/engine.iso"))
    assert not disk.is_boot_medium and not disk.holds_source
    mount(machine, "8:242", "/run/live/medium", "iso9660", "/dev/sdz2")
    [disk] = probe.probe_disks(root=machine)
    assert disk.is_boot_medium and not disk.holds_source


def test_stacked_devices_at_any_depth(machine: Path) -> None:
    """LVM on dm-crypt on a partition: both dm devices are recorded on the disk."""
    (machine / "sys/block/sdz/sdz2/holders/dm-0").mkdir()
    add_disk(machine, "dm-0", "254:0", VIRTUAL, 1, slaves=["sdz2"], holders=["dm-1"])
    add_disk(machine, "dm-1", "254:1", VIRTUAL, 1, slaves=["dm-0"], dm_name="vg-root")
    mount(machine, "254:1", "/", "ext4", "/dev/mapper/vg-root")
    swap(machine, "/dev/dm-0")
    [disk] = probe.probe_disks(root=machine)
    assert [(s.path, s.mountpoints, s.swap) for s in disk.stacked] == [
        ("/dev/dm-0", [], True),
        ("/dev/dm-1", ["/"], False),
    ]


def test_vanished_devices_are_skipped(machine: Path) -> None:
    """A disk pulled mid-scan leaves a dangling sysfs link or an empty directory."""
    (machine / "sys/block/sdy").symlink_to(machine / "sys/devices/gone/block/sdy")
    add_disk(machine, "sdx", "8:224", ATA.replace("ata1", "ata2"))
    (machine / "sys/devices/pci0000:00/0000:00:1f.2/ata2").rename(machine / "gone")
    assert [d.path for d in probe.probe_disks(root=machine)] == ["/dev/sdz"]


def test_snapshot_with_the_new_facts_replays(machine: Path, tmp_path: Path) -> None:
    (machine / "sys/block/sdz/sdz2/holders/dm-0").mkdir()
    add_disk(machine, "dm-0", "254:0", VIRTUAL, 1, slaves=["sdz2"])
    mount(machine, "254:0", "/home", "ext4", "/dev/dm-0")
    snap = probe.probe_machine(machine)
    snap.save(tmp_path / "snap.json")
    assert load_snapshot(tmp_path / "snap.json") == snap
    assert snap.disks[0].stacked[0].mountpoints == ["/home"]


def test_partition_paths():
    assert partition_path("/dev/sda", 2) == "/dev/sda2"
    assert partition_path("/dev/nvme0n1", 2) == "/dev/nvme0n1p2"
    assert partition_path("/dev/loop7", 5) == "/dev/loop7p5"


def test_missing_target():
    with pytest.raises(UserError, match="does not exist"):
        probe.probe_disk("/dev/disk/by-id/no-such-disk")


def test_the_live_mediums_own_loop_devices_are_not_listed(machine: Path, caplog) -> None:
    """live-boot's squashfs layers (loop devices backed by files on the medium, mounted under
    /run/live/) are not disks a technician can act on: not listed, but logged. Other loop
    devices, and real disks in use, stay on the list."""
    layers = {
        "loop0": ("/run/live/medium/live/filesystem.squashfs", "7:0"),
        "loop1": ("/run/live/medium/live/installer.squashfs", "7:1"),
        "loop2": ("/srv/images/lab-disk.img", "7:2"),  # someone's own image: listed
        "loop3": ("(deleted)", "7:3"),  # a toram copy whose file is gone, mounted below
    }
    for name, (backing, devnum) in layers.items():
        add_disk(machine, name, devnum, VIRTUAL, size_gb=0.2, backing_file=backing)
    mount(machine, "7:0", "/run/live/rootfs/filesystem.squashfs", "squashfs", "/dev/loop0")
    mount(machine, "7:3", "/run/live/rootfs/x", "squashfs", "/dev/loop3")
    mount(machine, "8:241", "/mnt", "ext4", "/dev/sdz1")
    with caplog.at_level(logging.INFO, logger="engine_installer"):
        disks = {d.path: d for d in probe.probe_disks(root=machine)}
    assert sorted(disks) == ["/dev/loop2", "/dev/sdz"]
    assert disks["/dev/sdz"].in_use == "partition /dev/sdz1 is mounted at /mnt"
    for name in ("loop0", "loop1", "loop3"):
        assert f"/dev/{name} not listed: it is part of the boot medium" in caplog.text
