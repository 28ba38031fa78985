"""Boot Engine disks in QEMU (TCG): SeaBIOS and OVMF, slot A, an upgrade on trial, a fallback.

The disk is laid out here with sgdisk/mkfs (the real partitioner is engine_installer.disks'),
then GRUB comes from install_bootloader and the boot environment from bootenv, and the
sample Engine's console line says what booted. The ESP is filled with mtools because the
test host's kernel may have no vfat. Each boot takes ~10 s on an idle 2-core machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from engine_installer.disks.bootloader import install_bootloader
from engine_installer.disks.files import write_bootenv_file
from engine_installer.disks.grub_config import slot_env_bytes
from engine_installer.iso.sample_payload import build_sample_payload
from engine_installer.ondisk.bootenv import BootEnv, parse_bootenv
from engine_installer.ondisk.layout import (
    BIOS_BOOT_SIZE,
    ESP_SIZE,
    GRUBENV_PATH,
    LABEL_BIOS,
    LABEL_ESP,
    LABEL_ROOT_A,
    LABEL_ROOT_B,
    LABEL_STORAGE,
    SLOT_ENV_PATHS,
    MiB,
)
from qemu import loops
from qemu.harness import VM, qemu_available

pytestmark = [
    pytest.mark.root,
    pytest.mark.qemu,
    pytest.mark.skipif(not qemu_available(), reason="qemu-system-x86 / ovmf not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for loop devices"),
]

SLOT_SIZE = 256 * MiB
STORAGE_SIZE = 64 * MiB
ESP_START = 2 * MiB  # 1 MiB lead-in + 1 MiB BIOS boot partition
BOOT_TIMEOUT = 300  # seconds; an idle machine needs ~10
ENGINE_LINE = r"ENGINE (\S+) build (\S+) slot=([AB]) vms=(\d+)"
# Per-slot boot options: GRUB must pass exactly these to the slot it boots.
SLOT_ARGS = {"A": ["engine.test=slot-a-args"], "B": ["quiet", "engine.test=slot-b-args"]}
MTOOLS_ENV = dict(os.environ, MTOOLS_SKIP_CHECK="1")
VMS = {"office": "local", "build-box": "custom"}


@pytest.fixture(scope="session")
def payloads(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("payloads")
    return {
        "4.5": build_sample_payload("4.5", base / "4.5", build="45").parent,
        "5.0": build_sample_payload("5.0", base / "5.0", build="50").parent,
    }


def _run(*cmd: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, **kwargs)


def make_engine_disk(
    image: Path,
    slot_a: Path | None,
    slot_b: Path | None,
    env: BootEnv,
    vms: dict[str, str],
    sector_size: int = 512,
) -> None:
    """A raw disk image with the DESIGN GPT layout, slots written, GRUB and bootenv set."""
    total = ESP_START + ESP_SIZE + 2 * SLOT_SIZE + STORAGE_SIZE + MiB
    with open(image, "wb") as handle:
        handle.truncate(total)
    with loops.loop_device(image, loops.INTEGRATION, sector_size, partitions=False) as device:
        _run(
            "sgdisk",
            f"-n1:1M:+{BIOS_BOOT_SIZE // 1024}K",
            "-t1:ef02",
            f"-c1:{LABEL_BIOS}",
            f"-n2:0:+{ESP_SIZE // MiB}M",
            "-t2:ef00",
            f"-c2:{LABEL_ESP}",
            f"-n3:0:+{SLOT_SIZE // MiB}M",
            f"-c3:{LABEL_ROOT_A}",
            f"-n4:0:+{SLOT_SIZE // MiB}M",
            f"-c4:{LABEL_ROOT_B}",
            "-n5:0:0",
            f"-c5:{LABEL_STORAGE}",
            device,
        )
        # BLKPG is the only way loop partition nodes appear here; -u (not -a) also replaces
        # partitions a previous user of this loop number left behind.
        _run("partx", "-u", device)
        assert Path(f"{device}p5").exists(), f"partx made no partition nodes for {device}"
        _run("mkfs.vfat", "-F", "32", "-n", "ENGINE-ESP", f"{device}p2")
        with tempfile.TemporaryDirectory(prefix="engine-test-") as tmp:
            storage = Path(tmp) / "storage"
            for name, kind in vms.items():
                (storage / "vms" / name).mkdir(parents=True)
                (storage / "vms" / name / "vm.json").write_text(
                    json.dumps({"name": name, "kind": kind, "engine_version": "4.5"})
                )
            storage.mkdir(exist_ok=True)
            _run("mkfs.ext4", "-q", "-L", LABEL_STORAGE, "-d", str(storage), f"{device}p5")
            for number, slot_image in ((3, slot_a), (4, slot_b)):
                if slot_image is not None:
                    _run("dd", f"if={slot_image}", f"of={device}p{number}", "bs=4M", "conv=fsync")
            # The ESP is staged in a directory and copied with mtools (no vfat needed).
            stage = Path(tmp) / "esp"
            stage.mkdir()
            install_bootloader(device, stage)
            write_bootenv_file(stage / GRUBENV_PATH, env)
            for slot, path in SLOT_ENV_PATHS.items():
                (stage / path).write_bytes(slot_env_bytes(SLOT_ARGS[slot], "us"))
            entries = [str(p) for p in stage.iterdir()]
            _run("mcopy", "-s", "-i", f"{device}p2", *entries, "::/", env=MTOOLS_ENV)


def esp_bootenv(image: Path) -> tuple[BootEnv, str]:
    """The boot environment on image's ESP (via mtools) and `grub-editenv list` of it."""
    data = _run(
        "mcopy", "-n", "-i", f"{image}@@{ESP_START}", f"::{GRUBENV_PATH}", "-", env=MTOOLS_ENV
    ).stdout
    with tempfile.NamedTemporaryFile() as copy:
        copy.write(data)
        copy.flush()
        listed = _run("grub-editenv", copy.name, "list", text=True).stdout
    return parse_bootenv(data), listed


def boot(image: Path, firmware: str, workdir: Path, expect: str) -> tuple[tuple[str, ...], float]:
    """Boot image until the Engine line appears; (version, build, slot, vms), seconds. The
    kernel command line the slot got must carry that slot's own boot options."""
    with VM(disk=image, firmware=firmware, workdir=workdir) as vm:
        match = vm.wait_for(expect, timeout=BOOT_TIMEOUT)
        seconds = vm.elapsed
        cmdline = re.search(r"ENGINE-CMDLINE (.*)", vm.serial_text())
    print(f"boot {firmware}: {match.group(0)!r} after {seconds:.1f} s")
    if len(match.groups()) >= 3:
        assert cmdline, "the sample Engine printed no ENGINE-CMDLINE line"
        slot = match.group(3)
        args = cmdline.group(1).split()
        assert "engine.keymap=us" in args and f"engine.slot={slot}" in args, args
        assert args[-len(SLOT_ARGS[slot]) :] == SLOT_ARGS[slot], args
    return match.groups(), seconds


@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_slot_a_boots(tmp_path: Path, payloads, firmware: str) -> None:
    image = tmp_path / "disk.img"
    make_engine_disk(image, payloads["4.5"] / "root.img", None, BootEnv("A"), VMS)
    groups, _ = boot(image, firmware, tmp_path / "vm", ENGINE_LINE)
    assert groups == ("4.5", "45", "A", "2")
    assert esp_bootenv(image)[0] == BootEnv("A")


def test_upgrade_on_trial_boots_b_and_marks_it_good(tmp_path: Path, payloads) -> None:
    image = tmp_path / "disk.img"
    trial = BootEnv(active="A", trial="B", tries=3)
    make_engine_disk(image, payloads["4.5"] / "root.img", payloads["5.0"] / "root.img", trial, VMS)
    groups, _ = boot(image, "bios", tmp_path / "vm", ENGINE_LINE)
    assert groups == ("5.0", "50", "B", "2")
    env, listed = esp_bootenv(image)
    assert env == BootEnv(active="B")
    assert "engine_active=B" in listed.splitlines()
    # With no trial left, B is now the default.
    groups, _ = boot(image, "uefi", tmp_path / "vm", ENGINE_LINE)
    assert groups[:3] == ("5.0", "50", "B")
    assert esp_bootenv(image)[0] == BootEnv(active="B")


def test_broken_trial_slot_falls_back_to_a(tmp_path: Path, payloads) -> None:
    image = tmp_path / "disk.img"
    # Slot B zeroed (a failed or torn upgrade), on its last try.
    env = BootEnv(active="A", trial="B", tries=1)
    make_engine_disk(image, payloads["4.5"] / "root.img", None, env, VMS)
    # GRUB spends the last try on B, cannot load it and boots the fallback entry, A.
    groups, _ = boot(image, "bios", tmp_path / "vm", ENGINE_LINE)
    assert groups[:3] == ("4.5", "45", "A")
    assert esp_bootenv(image)[0] == BootEnv(active="A", trial="B", tries=0)
    # Tries exhausted: GRUB clears the trial and boots A straight away.
    with VM(disk=image, firmware="uefi", workdir=tmp_path / "vm") as vm:
        match = vm.wait_for(ENGINE_LINE, timeout=BOOT_TIMEOUT)
        assert match.groups()[:3] == ("4.5", "45", "A")
        assert "trial=1" not in vm.serial_text()
    assert esp_bootenv(image)[0] == BootEnv(active="A")


def test_trial_slot_that_fails_after_the_kernel_reboots_and_falls_back(
    tmp_path: Path, payloads
) -> None:
    """A trial slot whose system cannot start: the initrd reboots, GRUB gives up on it."""
    broken = tmp_path / "broken-root.img"
    shutil.copyfile(payloads["5.0"] / "root.img", broken)
    _run("debugfs", "-w", "-R", "rm /sbin/init", str(broken))
    image = tmp_path / "disk.img"
    env = BootEnv(active="A", trial="B", tries=1)
    make_engine_disk(image, payloads["4.5"] / "root.img", broken, env, VMS)
    with VM(disk=image, firmware="bios", workdir=tmp_path / "vm") as vm:
        vm.wait_for(r"slot B on \S+ holds no Engine", timeout=BOOT_TIMEOUT)
        match = vm.wait_for(ENGINE_LINE, timeout=BOOT_TIMEOUT)  # after the reboot
        assert match.groups()[:3] == ("4.5", "45", "A")
        print(f"trial failure + reboot + fallback: {vm.elapsed:.1f} s")
    assert esp_bootenv(image)[0] == BootEnv(active="A")


def test_second_engine_disk_does_not_confuse_the_boot(tmp_path: Path, payloads) -> None:
    """Two Engine disks (4.5 and 5.0): the one the firmware booted brings up its own slot,
    whichever of sda/sdb the kernel happens to name it."""
    other = tmp_path / "other.img"
    image = tmp_path / "disk.img"
    make_engine_disk(other, payloads["4.5"] / "root.img", None, BootEnv("A"), {})
    make_engine_disk(image, payloads["5.0"] / "root.img", None, BootEnv("A"), VMS)
    vm = VM(
        disk=image,
        other_disks=[other],
        boot_disk_last=True,
        firmware="uefi",
        workdir=tmp_path / "vm",
    )
    with vm:
        match = vm.wait_for(ENGINE_LINE, timeout=BOOT_TIMEOUT)
        assert match.groups() == ("5.0", "50", "A", "2")  # the other disk holds 4.5, no VMs
        text = vm.serial_text()
        assert " sda: sda1 sda2 sda3 sda4 sda5" in text and " sdb: sdb1 sdb2 sdb3 sdb4 sdb5" in text


def test_4kn_nvme_disk_boots_under_uefi(tmp_path: Path, payloads) -> None:
    image = tmp_path / "disk.img"
    make_engine_disk(image, payloads["5.0"] / "root.img", None, BootEnv("A"), VMS, 4096)
    vm = VM(
        disk=image, firmware="uefi", bus="nvme", logical_block_size=4096, workdir=tmp_path / "vm"
    )
    with vm:
        match = vm.wait_for(ENGINE_LINE, timeout=BOOT_TIMEOUT)
        assert match.groups() == ("5.0", "50", "A", "2")
        assert "slot A is /dev/nvme0n1p3" in vm.serial_text()


def test_harness_always_kills_qemu(tmp_path: Path) -> None:
    image = tmp_path / "empty.img"
    image.write_bytes(b"\0" * MiB)
    with pytest.raises(RuntimeError), VM(disk=image, workdir=tmp_path / "vm") as vm:
        vm.wait_for("never printed", timeout=2)
    assert vm.proc is not None and vm.proc.poll() is not None
