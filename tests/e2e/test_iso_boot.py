"""The installer ISO's other boot paths under TCG: the medium check stops a damaged medium, the
"first hard disk" entry boots the laptop's disk, and what the medium carries (curated initramfs
drivers, unchecked-hash byte code). Its boot to screen 1 on DVD and USB stick, SeaBIOS and OVMF,
is part of the ISO fresh-install cells (tests/e2e/test_matrix.py)."""

from __future__ import annotations

import time
from pathlib import Path

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

# `installer_iso` (the 5.0 ISO, built once per session) comes from tests/e2e/conftest.py.
# Its boot to screen 1 on each firmware x medium (with the boot-time breakdown) is the first
# half of the ISO fresh-install cells in test_matrix.py: one boot per cell, not two.


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


def test_boot_from_first_hard_disk_entry(harddisk_iso, tmp_path):
    """The "Boot from the first hard disk" entry boots the laptop's disk, not the medium: its
    MBR under BIOS, its ESP's EFI/BOOT/BOOTX64.EFI under UEFI (seconds after GRUB's menu). The
    two small VMs (one vCPU each, each its own disk) run side by side."""
    vms = {}
    for firmware in ("bios", "uefi"):
        work = tmp_path / firmware
        work.mkdir()
        make_chain_target_disk(work / "laptop.img", work / "disk-parts")
        media = media_args(harddisk_iso, "dvd", work)
        vms[firmware] = VM(disk=work / "laptop.img", firmware=firmware, memory_mb=1024,
                           workdir=work, extra_args=media)  # fmt: skip
    banners = {"bios": MBR_BANNER.decode().strip("\r\n\0"), "uefi": EFI_BANNER}
    with vms["bios"], vms["uefi"]:
        for firmware, vm in vms.items():
            vm.wait_for(r"Boot from the first hard disk", timeout=BOOT_TIMEOUT)
            vm.wait_for(banners[firmware], timeout=180)


def _iso_file(iso, path: str, target):
    import pycdlib

    reader = pycdlib.PyCdlib()
    reader.open(str(iso))
    try:
        reader.get_file_from_iso(str(target), rr_path=path)
    finally:
        reader.close()
    return target


def module_name(path: str) -> str:
    """kernel/drivers/usb/storage/usb-storage.ko → usb_storage, as modprobe and lists name it."""
    return Path(path).name.split(".ko")[0].replace("-", "_")


def test_initramfs_carries_the_curated_drivers_only(installer_iso, tmp_path):
    """The medium's initrd holds every module of initramfs-modules (or the kernel has it
    built in) and no other: no GPU drivers, no file systems an installer medium never has."""
    import subprocess

    from engine_installer.iso import base

    medium = _iso_file(installer_iso, "/live/initrd.img", tmp_path / "initrd.img").read_bytes()
    # The medium's initrd is the cached base's, plus a small cpio with the build ID
    # (builder.initrd_with_uuid), which unmkinitramfs cannot follow: unpack the base's.
    initrd = base.build_base(base.default_cache_dir()).initrd
    assert medium.startswith(initrd.read_bytes())
    tree = tmp_path / "initrd"
    subprocess.run(["unmkinitramfs", str(initrd), str(tree)], check=True)
    modules = {module_name(p.name) for p in tree.rglob("*.ko*")}
    builtin = {
        module_name(line)
        for path in tree.rglob("modules.builtin")
        for line in path.read_text().split()
    }
    wanted = set(base.read_list(base.recipe_dir() / "base-hooks" / "initramfs-modules"))
    assert wanted - modules - builtin == set()
    assert not {"btrfs", "i915", "amdgpu", "nouveau", "xfs", "cifs"} & modules
    assert len(modules) < 120  # the curated list and its dependencies, not MODULES=most


UNCHECKED_HASH = 0b01  # a .pyc header's flags: hash-based, source never checked


def _pyc_flags(pyc: Path) -> int:
    return int.from_bytes(pyc.read_bytes()[4:8], "little")


def unsquash(squashfs: Path, root: Path, *paths: str) -> Path:
    """Extract paths of a squashfs under root (with the squashed times and modes); root."""
    import subprocess

    subprocess.run(["unsquashfs", "-q", "-d", str(root), str(squashfs), *paths],
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    return root


def test_installer_python_is_compiled_unchecked(installer_iso, tmp_path):
    """The installer's byte code is compiled at build time and trusted as it is (unchecked
    hash: no source read and hashed on import)."""
    layer = _iso_file(installer_iso, "/live/installer.squashfs", tmp_path / "installer.squashfs")
    pyc = "opt/engine-installer/site/engine_installer/tui/__pycache__/app.cpython-311.pyc"
    assert _pyc_flags(unsquash(layer, tmp_path / "x", pyc) / pyc) == UNCHECKED_HASH


def test_standard_library_byte_code_is_valid_on_the_medium(installer_iso, tmp_path):
    """Every .pyc of the live system's standard library is used as it is. The squashfs gives
    every file one fixed time, so timestamp-checked byte code would be stale at every boot and
    each Python start would compile its imports again from source."""
    from engine_installer.iso import base

    # The medium's filesystem.squashfs is the cached base's, byte for byte.
    squashfs = base.build_base(base.default_cache_dir()).squashfs
    stdlib = "usr/lib/python3.11"
    unsquash(squashfs, tmp_path / "x", stdlib)
    pycs = list((tmp_path / "x" / stdlib).rglob("*.pyc"))
    assert len(pycs) > 500  # the library Debian ships, compiled
    stale = [str(p.relative_to(tmp_path / "x")) for p in pycs if _pyc_flags(p) != UNCHECKED_HASH]
    assert stale == [], f"{len(stale)} timestamp-checked .pyc files, e.g. {stale[:3]}"


def test_font_caches_are_valid_on_the_medium(installer_iso, tmp_path):
    """fbterm on the laptop's screen finds its fonts through fontconfig's caches as they are on
    the medium, instead of scanning every font at each boot: fontconfig's own check of each
    cache against its directory (FC_DEBUG=16), run by the host's fontconfig over the live
    root's fonts, caches and configuration as unsquashfs gives them (with the squashed times)."""
    import re
    import subprocess

    from engine_installer.iso import base

    squashfs = base.build_base(base.default_cache_dir()).squashfs
    root = unsquash(squashfs, tmp_path / "x", "etc/fonts", "usr/share/fonts",
                    "usr/share/fontconfig", "var/cache/fontconfig")  # fmt: skip
    env = {"PATH": "/usr/bin:/bin", "FC_DEBUG": "16", "FONTCONFIG_SYSROOT": str(root),
           "FONTCONFIG_FILE": str(root / "etc/fonts/fonts.conf")}  # fmt: skip
    out = subprocess.run(["fc-match", "VL Gothic"], env=env, capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    check = r'FcCacheTimeValid dir "([^"]+)" cache checksum (\S+) dir checksum (\S+)'
    checks = re.findall(check, out)
    assert "/usr/share/fonts/truetype/vlgothic" in {directory for directory, _, _ in checks}, out
    stale = [directory for directory, cached, now in checks if cached != now]
    assert stale == [], f"font caches stale at boot: {stale}\n{out}"
    assert '"VL Gothic"' in out.splitlines()[-1]


def test_live_root_keeps_the_drivers_an_installer_uses(installer_iso, tmp_path):
    """The live root (whose modules udev loads after the switch from the initramfs) keeps
    every initramfs driver, every profile's storage and USB drivers, and the display, input and
    wired network drivers of real laptops, each with what it depends on; the trees in
    base-hooks/pruned-modules (Wi-Fi, sound, cameras, ...) are gone."""
    from engine_installer.hw.profiles import load_profiles
    from engine_installer.iso import base
    from engine_installer.iso.kernel_modules import read_modules_dep

    layer = base.build_base(base.default_cache_dir())
    modules = f"usr/lib/modules/{layer.info['kernel']}"
    tree = unsquash(layer.squashfs, tmp_path / "x", f"{modules}/modules.dep",
                    f"{modules}/modules.builtin", f"{modules}/kernel") / modules  # fmt: skip
    deps = read_modules_dep((tree / "modules.dep").read_text().splitlines())
    for module, needs in deps.items():
        assert all((tree / path).is_file() for path in [module, *needs]), module
    present = {module_name(path) for path in deps}
    present |= {module_name(line) for line in (tree / "modules.builtin").read_text().split()}
    wanted = set(base.read_list(base.recipe_dir() / "base-hooks" / "initramfs-modules"))
    for profile in load_profiles():
        wanted |= set(profile.storage_controllers)
    wanted |= {"xhci_pci", "ehci_pci", "usb_storage", "uas", "usbhid", "hid_generic", "atkbd",
               "i915", "amdgpu", "nouveau", "bochs", "e1000e", "r8169", "igc", "e1000",
               "virtio_net", "r8152", "cdc_ether", "ax88179_178a", "thinkpad_acpi"}  # fmt: skip
    assert wanted - present == set()
    assert not {"iwlwifi", "ath10k_pci", "snd_hda_intel", "uvcvideo", "btusb"} & present
