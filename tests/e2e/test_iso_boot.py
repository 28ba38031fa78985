"""The installer ISO boots to screen 1 on the serial console: DVD and USB stick, SeaBIOS and
OVMF, under TCG (about 1-2 minutes per boot on the CI machine; the ISO is built once per
session from the cached live system base)."""

from __future__ import annotations

import re
import time

import pytest

from qemu.harness import VM, qemu_available
from tests.iso_helpers import (
    EFI_BANNER,
    MBR_BANNER,
    build_real_iso,
    corrupt_file_in_iso,
    make_chain_target_disk,
    media_args,
)

pytestmark = [pytest.mark.qemu, pytest.mark.root]

# Screen 1 of the installer, as the technician sees it on the serial console.
SCREEN1 = r"Install Engine on this laptop"
BOOT_TIMEOUT = 600
TIMES: dict[str, float] = {}


# `installer_iso` (the 5.0 ISO, built once per session) comes from tests/e2e/conftest.py.


@pytest.mark.parametrize("firmware", ["bios", "uefi"])
@pytest.mark.parametrize("media", ["dvd", "usb"])
def test_boots_to_screen1(installer_iso, tmp_path, firmware, media):
    laptop = tmp_path / "laptop.qcow2"
    import subprocess

    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(laptop), "8G"], check=True)
    vm = VM(disk=laptop, disk_format="qcow2", firmware=firmware, memory_mb=2048,
            workdir=tmp_path, extra_args=media_args(installer_iso, media, tmp_path))  # fmt: skip
    started = time.monotonic()
    with vm:
        vm.wait_for(r"Install Engine", timeout=BOOT_TIMEOUT)  # GRUB's menu
        vm.wait_for(SCREEN1, timeout=BOOT_TIMEOUT)
        text = vm.serial_text()
    seconds = time.monotonic() - started
    TIMES[f"{firmware}/{media}"] = seconds
    print(f"\n{firmware}/{media}: screen 1 after {seconds:.0f} s (TCG)")
    assert "Traceback" not in text, re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)[-3000:]


def test_check_entry_stops_a_damaged_medium_before_the_installer(tmp_path_factory, tmp_path):
    """ "Check the medium, then install" on an ISO with one flipped payload byte: the live
    system names the file and the installer never starts (so no disk is touched)."""
    if not qemu_available():
        pytest.skip("QEMU or OVMF is not installed (make setup)")
    iso = build_real_iso(tmp_path_factory.mktemp("iso-check"), menu_default="check")
    corrupt_file_in_iso(iso, "/engine/root.img")
    laptop = tmp_path / "laptop.qcow2"
    import subprocess

    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(laptop), "8G"], check=True)
    vm = VM(disk=laptop, disk_format="qcow2", memory_mb=2048, workdir=tmp_path,
            extra_args=media_args(iso, "dvd", tmp_path))  # fmt: skip
    with vm:
        vm.wait_for(r"Checking the installation medium", timeout=BOOT_TIMEOUT)
        vm.wait_for(r"THE MEDIUM IS DAMAGED: engine/root\.img", timeout=BOOT_TIMEOUT)
        time.sleep(15)  # the installer units would start right after a passing check
        text = vm.serial_text()
    assert SCREEN1 not in text


@pytest.fixture(scope="session")
def harddisk_iso(tmp_path_factory):
    if not qemu_available():
        pytest.skip("QEMU or OVMF is not installed (make setup)")
    return build_real_iso(tmp_path_factory.mktemp("iso-harddisk"), menu_default="harddisk")


@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_boot_from_first_hard_disk_entry(harddisk_iso, tmp_path, firmware):
    """The "Boot from the first hard disk" entry boots the laptop's disk, not the medium: its
    MBR under BIOS, its ESP's EFI/BOOT/BOOTX64.EFI under UEFI (seconds after GRUB's menu)."""
    disk = tmp_path / "laptop.img"
    make_chain_target_disk(disk, tmp_path / "disk-parts")
    banner = MBR_BANNER.decode().strip("\r\n\0") if firmware == "bios" else EFI_BANNER
    vm = VM(disk=disk, firmware=firmware, memory_mb=1024, workdir=tmp_path,
            extra_args=media_args(harddisk_iso, "dvd", tmp_path))  # fmt: skip
    with vm:
        vm.wait_for(r"Boot from the first hard disk", timeout=BOOT_TIMEOUT)
        vm.wait_for(banner, timeout=180)
