"""The harness's QEMU command lines (no QEMU started): laptop machine, media, disks, KVM."""

from __future__ import annotations

from pathlib import Path

import pytest

from qemu.harness import KVM_MESSAGE, VM, HarnessError, laptop, requested_accel


def command(vm: VM, tmp_path: Path, monkeypatch) -> str:
    monkeypatch.setattr("qemu.harness.make_usb_stick", lambda iso, stick: stick)
    vm.workdir = tmp_path
    vm.log_path = tmp_path / "serial-0.log"
    vm.serial_socket = tmp_path / "s"
    vm.monitor_socket = tmp_path / "m"
    return " ".join(vm.command())


def test_laptop_with_a_usb_stick_under_ovmf(tmp_path, monkeypatch):
    vm = laptop(tmp_path / "d.img", media=tmp_path / "e.iso", media_kind="usb", firmware="uefi")
    cmd = command(vm, tmp_path, monkeypatch)
    assert "-machine q35 -accel tcg,tb-size=128 -m 2048" in cmd
    assert "-device qemu-xhci,id=xhci" in cmd
    assert "usb-storage,bus=xhci.0,drive=media0,removable=on,bootindex=1" in cmd
    assert "format=qcow2,file=" in cmd and "usb-stick-0.qcow2" in cmd
    assert "ide-hd,drive=disk0,bus=ide.0,bootindex=2" in cmd
    assert "OVMF_CODE_4M.fd" in cmd and (tmp_path / "OVMF_VARS-0.fd").exists()
    assert f"socket,id=ser0,path={tmp_path}/s,server=on,wait=on,logfile=" in cmd


def test_dvd_and_a_4kn_nvme_disk(tmp_path, monkeypatch):
    vm = laptop(tmp_path / "d.img", media=tmp_path / "e.iso", media_kind="dvd", sector_size=4096)
    cmd = command(vm, tmp_path, monkeypatch)
    assert "media=cdrom,readonly=on" in cmd and "ide-cd,drive=media0,bus=ide.5,bootindex=1" in cmd
    assert "nvme,drive=disk0" in cmd and "logical_block_size=4096" in cmd
    assert "pflash" not in cmd  # SeaBIOS


def test_ahci_cannot_have_4k_sectors(tmp_path):
    with pytest.raises(ValueError, match="nvme"):
        VM(disk=tmp_path / "d", logical_block_size=4096)


def test_kvm_is_refused_plainly(monkeypatch):
    monkeypatch.setenv("ENGINE_QEMU_ACCEL", "kvm")
    with pytest.raises(HarnessError) as err:
        requested_accel()
    assert str(err.value) == KVM_MESSAGE and "not usable" in KVM_MESSAGE
    with pytest.raises(HarnessError):
        VM(disk=None, accel="kvm").start()
    monkeypatch.delenv("ENGINE_QEMU_ACCEL")
    assert requested_accel() == "tcg"


def test_secure_boot_firmware_is_the_smm_build_with_microsoft_keys(tmp_path, monkeypatch):
    vm = laptop(tmp_path / "d.img", media=tmp_path / "e.iso", firmware="uefi-sb")
    cmd = command(vm, tmp_path, monkeypatch)
    assert "-machine q35,smm=on " in cmd
    assert "-global driver=cfi.pflash01,property=secure,value=on" in cmd
    assert "OVMF_CODE_4M.secboot.fd" in cmd
    vars_copy = tmp_path / "OVMF_VARS-0.fd"
    assert vars_copy.read_bytes() == Path("/usr/share/OVMF/OVMF_VARS_4M.ms.fd").read_bytes()
    snakeoil = laptop(tmp_path / "d.img", firmware="uefi-sb-snakeoil")
    assert "OVMF_CODE_4M.secboot.fd" in command(snakeoil, tmp_path, monkeypatch)
    assert vars_copy.read_bytes() == Path("/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd").read_bytes()
    plain = command(laptop(tmp_path / "d.img", firmware="uefi"), tmp_path, monkeypatch)
    assert "smm=on" not in plain and "secboot" not in plain
