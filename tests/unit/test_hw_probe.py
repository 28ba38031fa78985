"""The probe: the real machine (whatever it is), and sysfs trees shaped like VMD/RST laptops."""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest

from engine_installer.hw.check import check_machine
from engine_installer.machine.probe import probe_machine
from engine_installer.machine.snapshot import load_snapshot

REPO_PROFILES = Path(__file__).resolve().parents[2] / "hw-profiles"


def test_live_probe_records_this_machine_and_replays(tmp_path):
    snap = probe_machine()
    assert snap.memory_bytes == psutil.virtual_memory().total
    assert snap.cpu_flags and snap.cpu_model
    assert snap.firmware == ("uefi" if os.path.isdir("/sys/firmware/efi") else "bios")
    assert snap.acpi_dmar == os.path.exists("/sys/firmware/acpi/tables/DMAR")
    assert "product_serial" not in snap.dmi and "product_uuid" not in snap.dmi
    path = tmp_path / "me.json"
    snap.save(path)
    assert load_snapshot(path) == snap


def test_this_machine_matches_the_qemu_profile_if_it_is_qemu_q35():
    snap = probe_machine()
    if snap.dmi.get("sys_vendor") != "QEMU" or "Q35" not in snap.dmi.get("product_name", ""):
        pytest.skip("not running inside a QEMU q35 machine")
    report = check_machine(snap, REPO_PROFILES)
    wanted = "qemu-q35-ovmf" if snap.firmware == "uefi" else "qemu-q35-seabios"
    assert report.profile_id == wanted


def _file(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def _pci(root: Path, devpath: str, cls: str, vendor: str, device: str, driver: str) -> Path:
    """A PCI function under sys/devices, linked from sys/bus/pci/devices, bound to driver."""
    dev = root / "sys/devices" / devpath
    _file(dev / "class", f"0x{cls}")
    _file(dev / "vendor", f"0x{vendor}")
    _file(dev / "device", f"0x{device}")
    if driver:
        drv = root / "sys/bus/pci/drivers" / driver
        drv.mkdir(parents=True, exist_ok=True)
        (dev / "driver").symlink_to(drv)
    link = root / "sys/bus/pci/devices" / dev.name
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(dev)
    return dev


def _block(root: Path, devdir: Path, name: str, gb: int) -> None:
    blk = devdir / name
    _file(blk / "size", str(gb * 10**9 // 512))
    _file(blk / "removable", "0")
    _file(blk / "ro", "0")
    link = root / "sys/block" / name
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(blk)


def _laptop(root: Path, vmx: bool = True) -> None:
    flags = "fpu vme sse sse2 " + ("vmx ept" if vmx else "")
    _file(root / "proc/cpuinfo", f"processor\t: 0\nmodel name\t: 11th Gen Intel(R) Core(TM) "
          f"i5-1145G7 @ 2.60GHz\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: fpu")  # fmt: skip
    _file(root / "proc/meminfo", "MemTotal:       16106128 kB")
    _file(root / "sys/class/dmi/id/sys_vendor", "Dell Inc.")
    _file(root / "sys/class/dmi/id/product_name", "Latitude 5420")
    (root / "sys/firmware/efi").mkdir(parents=True)
    _file(root / "sys/firmware/acpi/tables/DMAR", "DMAR")


def test_vmd_laptop_tree(tmp_path):
    """Dell Latitude 5420 with 'RAID On': the NVMe SSD sits in the VMD PCI domain."""
    _laptop(tmp_path)
    vmd = _pci(tmp_path, "pci0000:00/0000:00:0e.0", "010400", "8086", "9a0b", "vmd")
    nvme = _pci(tmp_path, f"{vmd.relative_to(tmp_path / 'sys/devices')}/pci10000:e0/"
                "10000:e0:1d.0/10000:e1:00.0", "010802", "144d", "a80a", "nvme")  # fmt: skip
    _block(tmp_path, nvme / "nvme/nvme0", "nvme0n1", 512)
    snap = probe_machine(tmp_path)
    assert snap.dmi == {"sys_vendor": "Dell Inc.", "product_name": "Latitude 5420"}
    assert snap.firmware == "uefi" and snap.acpi_dmar and "vmx" in snap.cpu_flags
    assert snap.memory_bytes == 16106128 * 1024
    kinds = {c.address: c.kind for c in snap.storage_controllers}
    assert kinds == {"0000:00:0e.0": "vmd", "10000:e1:00.0": "nvme"}
    (disk,) = snap.disks
    assert (disk.path, disk.bus, disk.controller) == ("/dev/nvme0n1", "nvme", "vmd")
    report = check_machine(snap, REPO_PROFILES)
    assert report.profile_id == "dell-latitude-5420" and report.verdict == "fail"
    assert [i.name for i in report.items if i.status == "fail"] == ["storage"]


def test_vmd_without_driver_shows_no_disk(tmp_path):
    _laptop(tmp_path, vmx=False)
    _pci(tmp_path, "pci0000:00/0000:00:0e.0", "010400", "8086", "9a0b", "")
    snap = probe_machine(tmp_path)
    assert snap.disks == [] and [c.kind for c in snap.storage_controllers] == ["vmd"]
    assert "vmx" not in snap.cpu_flags
    fails = {i.name for i in check_machine(snap, REPO_PROFILES).items if i.status == "fail"}
    assert fails == {"vt-x", "storage"}


def test_rst_remapped_nvme_tree(tmp_path):
    _laptop(tmp_path)
    sata = _pci(tmp_path, "pci0000:00/0000:00:17.0", "010400", "8086", "282a", "ahci")
    _file(sata / "remapped_nvme", "1")
    (ctrl,) = probe_machine(tmp_path).storage_controllers
    assert (ctrl.kind, ctrl.driver, ctrl.remapped_nvme) == ("raid", "ahci", 1)


def test_ahci_sata_disk_tree(tmp_path):
    _laptop(tmp_path)
    sata = _pci(tmp_path, "pci0000:00/0000:00:1f.2", "010601", "8086", "1c03", "ahci")
    _block(tmp_path, sata / "ata1/host0/target0:0:0/0:0:0:0/block", "sda", 256)
    (disk,) = probe_machine(tmp_path).disks
    assert (disk.path, disk.bus, disk.controller, disk.size) == ("/dev/sda", "ata", "ahci", 256e9)
