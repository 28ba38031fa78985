"""probe.py against a fake sysfs tree: attributes, partitions, busy reasons (no root)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine_installer.base.errors import UserError
from engine_installer.machine import probe
from engine_installer.ondisk.layout import partition_path


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


@pytest.fixture
def sysfs(tmp_path, monkeypatch):
    block = tmp_path / "block"
    disk = block / "sdz"
    _write(disk / "size", str(2 * 1024 * 1024 * 1024 // 512))
    _write(disk / "dev", "8:240")
    _write(disk / "device" / "model", "LAPTOP SSD")
    _write(disk / "device" / "vendor", "ATA")
    _write(disk / "queue" / "logical_block_size", "4096")
    _write(disk / "removable", "0")
    _write(disk / "ro", "0")
    (disk / "holders").mkdir()
    for number in (1, 2):
        part = disk / f"sdz{number}"
        _write(part / "partition", str(number))
        _write(part / "size", "2048")
        _write(part / "dev", f"8:{240 + number}")
        (part / "holders").mkdir()
    _write(block / "loop9" / "size", "0")  # an unattached loop device: not a disk
    monkeypatch.setattr(probe, "SYS_BLOCK", block)
    monkeypatch.setattr(probe, "_udev_context", lambda: None)
    monkeypatch.setattr(probe, "_blkid", lambda paths: {})
    monkeypatch.setattr(probe, "_swaps", lambda: set())
    monkeypatch.setattr(probe, "_mounts", lambda: {})
    monkeypatch.setattr(probe, "boot_medium_disks", lambda source=None: set())
    return disk


def test_attributes_and_partitions(sysfs):
    [disk] = probe.probe_disks()
    assert (disk.path, disk.size, disk.model, disk.vendor) == (
        "/dev/sdz",
        2 * 1024**3,
        "LAPTOP SSD",
        "ATA",
    )
    assert disk.logical_sector_size == 4096 and not disk.removable and not disk.read_only
    assert [p.path for p in disk.partitions] == ["/dev/sdz1", "/dev/sdz2"]
    assert disk.in_use == "" and not disk.is_boot_medium


def test_busy_reasons(sysfs, monkeypatch):
    (sysfs / "sdz2" / "holders" / "dm-0").mkdir()
    [disk] = probe.probe_disks()
    assert disk.in_use.startswith("partition /dev/sdz2 is held by dm-0")
    monkeypatch.setattr(probe, "_mounts", lambda: {"8:241": "/home"})
    [disk] = probe.probe_disks()
    assert disk.in_use == "partition /dev/sdz1 is mounted at /home"
    assert disk.partitions[0].mountpoint == "/home"


def test_partition_paths():
    assert partition_path("/dev/sda", 2) == "/dev/sda2"
    assert partition_path("/dev/nvme0n1", 2) == "/dev/nvme0n1p2"
    assert partition_path("/dev/loop7", 5) == "/dev/loop7p5"


def test_missing_target():
    with pytest.raises(UserError, match="does not exist"):
        probe.probe_disk("/dev/disk/by-id/no-such-disk")


def test_the_live_mediums_own_loop_devices_are_not_listed(sysfs, monkeypatch, caplog):
    """live-boot's squashfs layers (loop devices backed by files on the medium, mounted under
    /run/live/) are not disks a technician can act on: not listed, but logged. Other loop
    devices, and real disks in use, stay on the list."""
    import logging

    block = sysfs.parent
    layers = {
        "loop0": ("/run/live/medium/live/filesystem.squashfs", "7:0"),
        "loop1": ("/run/live/medium/live/installer.squashfs", "7:1"),
        "loop2": ("/srv/images/lab-disk.img", "7:2"),  # someone's own image: listed
        "loop3": ("(deleted)", "7:3"),  # a toram copy whose file is gone, mounted below
    }
    for name, (backing, devnum) in layers.items():
        _write(block / name / "size", "409600")
        _write(block / name / "dev", devnum)
        _write(block / name / "loop" / "backing_file", backing)
        (block / name / "holders").mkdir()
    monkeypatch.setattr(
        probe,
        "_mounts",
        lambda: {
            "7:0": "/run/live/rootfs/filesystem.squashfs",
            "7:3": "/run/live/rootfs/x",
            "8:241": "/mnt",
        },
    )
    with caplog.at_level(logging.INFO, logger="engine_installer"):
        disks = {d.path: d for d in probe.probe_disks()}
    assert sorted(disks) == ["/dev/loop2", "/dev/sdz"]
    assert disks["/dev/sdz"].in_use == "partition /dev/sdz1 is mounted at /mnt"
    for name in ("loop0", "loop1", "loop3"):
        assert f"/dev/{name} not listed: it is part of the boot medium" in caplog.text
