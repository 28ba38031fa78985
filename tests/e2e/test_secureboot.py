"""Secure Boot cells, in QEMU under TCG with OVMF's Secure Boot build (SMM, enforcing).

`uefi-sb` is OVMF_CODE_4M.secboot.fd with a fresh copy of OVMF_VARS_4M.ms.fd: Microsoft's keys
enrolled, as on a laptop from the shop. `uefi-sb-snakeoil` has only OVMF's snakeoil test key
enrolled, standing in for a fleet that enrolled its own key (`engine-iso build --db-key`).

- the installer ISO (Debian's shim → signed GRUB → signed kernel) boots to screen 1 as a DVD
  (then a fresh install) and as a USB stick (then an upgrade of an Engine installed before
  Secure Boot support, whose ESP gets the signed chain); each installed disk then boots alone
  to `ENGINE … secureboot=on`, the upgrade's first boot being the trial boot that GRUB counts
  with save_env under lockdown (ENGINE_E2E_SB_FULL=1 adds USB + fresh and DVD + upgrade);
- a trial slot that fails after the kernel falls back to the old slot under Secure Boot;
- negative: the same medium with an unsigned GRUB as EFI/BOOT/BOOTX64.EFI is refused by the
  firmware ("Access Denied"), while plain OVMF runs it: enforcement is real;
- own key: a medium built with --db-key/--db-cert boots where only that key is enrolled, and
  the Microsoft-only medium does not.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pycdlib
import pytest

from engine_installer.ondisk.bootenv import BootEnv, bootenv_bytes, parse_bootenv
from engine_installer.ondisk.layout import GRUBENV_PATH
from qemu import loops
from qemu.console import SerialConsole
from qemu.disks import SAMPLE_VMS, flatten, install_on_image, vm_hashes
from qemu.harness import (
    ENGINE_STATUS,
    SNAKEOIL_CERT,
    SNAKEOIL_KEY,
    boot_installed_disk,
    laptop,
    make_overlay,
)
from tests.e2e.test_matrix import blank_disk, confirm_summary, iso_build, power_off
from tests.iso_helpers import EPOCH, build_real_iso

# One xdist worker runs the module: its module fixtures (disks, keys) are built once.
pytestmark = [pytest.mark.qemu, pytest.mark.root, pytest.mark.xdist_group("secureboot")]

SCREEN1 = "Install Engine on this laptop"
BOOT_TIMEOUT = 900  # firmware → shim → GRUB → live system → installer under TCG: ~2 min
MENU = r"Boot from the first hard disk"  # the last GRUB menu entry: the menu is up
DENIED = r"BdsDxe: failed to load Boot\d+ .*: Access Denied"
UNSIGNED_BANNER = "UNSIGNED-GRUB-RAN"


def iso_file_offset(iso: Path, path: str) -> int:
    reader = pycdlib.PyCdlib()
    reader.open(str(iso))
    try:
        return reader.get_record(rr_path=path).extent_location() * 2048
    finally:
        reader.close()


SB = "uefi-sb"
PROFILE = "QEMU Q35 + ICH9 (OVMF), lab"


def to_existing_install_screen(console: SerialConsole, vm) -> None:
    """Screen 1 (the medium booted under Secure Boot), the welcome screen reporting Secure
    Boot on with nothing to complain about, the licence, the keyboard."""
    console.boot_highlighted_entry(BOOT_TIMEOUT)
    console.wait_for("1/5 Install choice", timeout=BOOT_TIMEOUT)
    serial = vm.serial_text()
    assert SCREEN1 in console.text()
    assert "Access Denied" not in serial and "Security Violation" not in serial
    console.press("enter")
    console.wait_for("2/5 Welcome")
    screen = console.wait_for(r"Compatibility: \S+  \(.*\)|check unavailable", 120, True)
    assert f"Compatibility: PASS  ({PROFILE} profile)" in screen, screen
    assert "Secure Boot: on" in screen, screen
    console.press("enter")
    console.wait_for("3/5 Licence agreement")
    console.press("tab", "enter")  # Accept
    console.wait_for("4/5 Keyboard layout")
    console.press("enter")


@pytest.fixture(scope="module")
def legacy45_disk(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """Engine 4.5 as installed before Secure Boot support (its payload carries no signed
    chain: a GRUB built by the installer, which only boots with Secure Boot off) with VMs."""
    from engine_installer.iso.sample_payload import build_sample_payload

    base = tmp_path_factory.mktemp("legacy45")
    payload = build_sample_payload("4.5", base / "payload", build="45", boot_chain=False).parent
    image = base / "engine-4.5-legacy.img"
    hashes = install_on_image(image, payload, vms=SAMPLE_VMS)
    image.chmod(0o444)
    return image, hashes


# Each medium boots to screen 1 and each action boots the disk in CI: DVD + fresh install,
# USB + upgrade. ENGINE_E2E_SB_FULL=1 adds the other two (about 3 minutes each under TCG).
FULL = os.environ.get("ENGINE_E2E_SB_FULL") == "1"
ISO_CELLS = [
    pytest.param(media, action, id=f"{media}-{action}", marks=[
        pytest.mark.cell(f"Secure Boot: ISO as {media.upper()} to screen 1, {action}, "
                         "disk boots secureboot=on"),
        *([] if always or FULL else [pytest.mark.skip(reason="ENGINE_E2E_SB_FULL=1 runs it")]),
    ])
    for media, action, always in (("dvd", "fresh", True), ("usb", "upgrade", True),
                                  ("usb", "fresh", False), ("dvd", "upgrade", False))
]  # fmt: skip


@pytest.mark.parametrize(("media", "action"), ISO_CELLS)
def test_iso_with_secure_boot(installer_iso, request, tmp_path, media, action):
    """fresh: a blank disk; the firmware gets the Engine boot entry. upgrade: the 4.5 from
    before Secure Boot support with VMs: its ESP gets the signed chain, the first boot of B is
    the trial GRUB counts with save_env under lockdown, and B marks itself good."""
    build = iso_build(installer_iso)
    if action == "fresh":
        disk, disk_format = blank_disk(tmp_path / "laptop.img"), "raw"
    else:
        base, hashes = request.getfixturevalue("legacy45_disk")
        disk, disk_format = make_overlay(base, tmp_path / "laptop.qcow2"), "qcow2"
    with laptop(disk, media=installer_iso, media_kind=media, firmware=SB,
                disk_format=disk_format, workdir=tmp_path / "installer") as vm:  # fmt: skip
        console = SerialConsole(vm)
        to_existing_install_screen(console, vm)
        if action == "fresh":
            screen = console.wait_for("5/5 Target disk", timeout=300)
            assert "No Engine installation was found" in screen
            console.press("enter")
            confirm_summary(console, "Install Engine")
            done = console.wait_for(r"Installed Engine 5\.0|could not finish", 900, True)
            assert f"Installed Engine 5.0 (build {build})" in done, done
        else:
            screen = console.wait_for("An Engine installation was found", timeout=300)
            assert "Engine 4.5 (build 45), can be upgraded" in screen
            console.press("enter")
            confirm_summary(console, "Upgrade Engine")
            done = console.wait_for(r"Upgraded /dev/\S+ to Engine 5\.0|could not finish", 900,
                                    True)  # fmt: skip
            assert "could not finish" not in done, done
        power_off(console, vm)
    # The installer gave the firmware a boot entry for Engine's own chain (efibootmgr).
    nvram = (tmp_path / "installer" / "OVMF_VARS-0.fd").read_bytes()
    assert "\\EFI\\debian\\shimx64.efi".encode("utf-16-le") in nvram
    groups, _ = boot_installed_disk(disk, tmp_path / "disk-boot", firmware=SB,
                                    disk_format=disk_format, pattern=ENGINE_STATUS)  # fmt: skip
    if action == "fresh":
        assert groups == ("5.0", build, "A", "0", "on")
        return
    assert groups == ("5.0", build, "B", "3", "on")
    raw = flatten(disk, tmp_path / "after.raw")
    assert vm_hashes(raw) == hashes
    assert esp_bootenv(raw) == BootEnv(active="B")


def esp_bootenv(image: Path) -> BootEnv:
    from engine_installer.ondisk import esp

    with loops.loop_device(image, loops.E2E) as device:
        return parse_bootenv(esp.read_file(f"{device}p2", GRUBENV_PATH), image.name)


@pytest.mark.cell("Secure Boot: a failing trial slot falls back to the old slot")
def test_failed_trial_falls_back_under_secure_boot(payloads, tmp_path):
    """4.5 on A, then 5.0 written to B by the real upgrade, but its system cannot start
    (/sbin/init removed), on its last try: GRUB boots B (save_env), B fails and reboots,
    GRUB gives up on it (save_env) and 4.5 on A comes up, all under Secure Boot."""
    broken = tmp_path / "broken-5.0"
    shutil.copytree(payloads["5.0"], broken)
    subprocess.run(["debugfs", "-w", "-R", "rm /sbin/init", str(broken / "root.img")],
                   check=True, capture_output=True)  # fmt: skip
    rehash_manifest(broken)
    image = tmp_path / "laptop.img"
    install_on_image(image, payloads["4.5"])
    install_on_image(image, broken, action="upgrade")
    set_bootenv(image, BootEnv(active="A", trial="B", tries=1))
    with laptop(image, firmware=SB, workdir=tmp_path / "vm", memory_mb=1024) as vm:
        vm.wait_for(r"slot B on \S+ holds no Engine", timeout=BOOT_TIMEOUT)
        match = vm.wait_for(ENGINE_STATUS, timeout=BOOT_TIMEOUT)  # after the reboot
        assert match.groups() == ("4.5", "45", "A", "0", "on")
        assert "Access Denied" not in vm.serial_text()
    assert esp_bootenv(image) == BootEnv(active="A")


def rehash_manifest(payload: Path) -> None:
    from engine_installer.ondisk.payload import MANIFEST_NAME, write_manifest

    data = json.loads((payload / MANIFEST_NAME).read_text())
    artifacts = {name: entry["path"] for name, entry in data.pop("artifacts").items()}
    write_manifest(payload, data, artifacts)


def set_bootenv(image: Path, env: BootEnv) -> None:
    from engine_installer.disks import esp

    with loops.loop_device(image, loops.E2E) as device:
        esp.write_file(f"{device}p2", GRUBENV_PATH, bootenv_bytes(env))


def unsigned_grub(work: Path) -> Path:
    """A GRUB image built here, signed by no one, that prints a banner on the serial port."""
    from engine_installer.iso import bootloader

    work.mkdir(parents=True, exist_ok=True)
    config = f"serial --unit=0 --speed=115200\nterminal_output console serial\n" \
             f"echo {UNSIGNED_BANNER}\nsleep 600\n"  # fmt: skip
    memdisk = work / "memdisk.tar"
    bootloader.memdisk_tar(config, memdisk, EPOCH)
    image = work / "BOOTX64.EFI"
    bootloader.grub_mkimage("x86_64-efi", image, memdisk, ["echo", "serial", "terminal", "sleep"])
    return image


@pytest.mark.cell("Secure Boot: unsigned GRUB refused by the firmware (USB)")
def test_unsigned_grub_on_the_medium_is_refused(installer_iso, tmp_path):
    """The medium with shim swapped for an unsigned GRUB (in the FAT image a USB stick boots
    from): Secure Boot refuses it; plain OVMF runs it, so the refusal is the signature check."""
    medium = tmp_path / "unsigned.iso"
    shutil.copyfile(installer_iso, medium)
    offset = iso_file_offset(medium, "/boot/grub/efi.img")
    grub = unsigned_grub(tmp_path / "grub")
    subprocess.run(["mcopy", "-o", "-i", f"{medium}@@{offset}", str(grub),
                    "::/EFI/BOOT/BOOTX64.EFI"], check=True, capture_output=True,
                   env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"})  # fmt: skip
    # Two small independent VMs (one vCPU each, own stick overlays) run side by side.
    with (
        laptop(None, media=medium, media_kind="usb", firmware="uefi-sb",
               workdir=tmp_path / "secure-boot") as vm,
        laptop(None, media=medium, media_kind="usb", firmware="uefi",
               workdir=tmp_path / "plain") as plain,
    ):  # fmt: skip
        vm.wait_for(DENIED, timeout=300)
        assert "USB" in vm.wait_for(DENIED, timeout=1).group(0)
        plain.wait_for(UNSIGNED_BANNER, timeout=300)
    assert UNSIGNED_BANNER not in vm.serial_text()


@pytest.fixture(scope="module")
def own_key(tmp_path_factory) -> tuple[Path, Path]:
    """OVMF's snakeoil db key, decrypted (sbsign takes no passphrase), and its certificate."""
    work = tmp_path_factory.mktemp("own-key")
    key = work / "db.key"
    subprocess.run(["openssl", "pkey", "-in", str(SNAKEOIL_KEY), "-passin", "pass:snakeoil",
                    "-out", str(key)], check=True, capture_output=True)  # fmt: skip
    return key, SNAKEOIL_CERT


@pytest.mark.cell("Secure Boot: own-key medium (--db-key), only that key enrolled, USB")
def test_own_key_medium_boots_where_only_that_key_is_enrolled(
    installer_iso, own_key, tmp_path_factory, tmp_path
):
    key, cert = own_key
    iso = build_real_iso(tmp_path_factory.mktemp("own-key-iso"), db_key=key, db_cert=cert)
    # The Microsoft-signed medium is not trusted by that firmware. The two small VMs run side
    # by side.
    with (
        laptop(None, media=iso, media_kind="usb", firmware="uefi-sb-snakeoil",
               workdir=tmp_path / "own-key") as vm,
        laptop(None, media=installer_iso, media_kind="usb", firmware="uefi-sb-snakeoil",
               workdir=tmp_path / "microsoft-only") as microsoft,
    ):  # fmt: skip
        vm.wait_for(MENU, timeout=300)
        assert "Access Denied" not in vm.serial_text()
        microsoft.wait_for(DENIED, timeout=300)
    assert "Boot from the first hard disk" not in microsoft.serial_text()
