"""The end-to-end matrix (issue 5), in QEMU under TCG.

Cells that need the installer ISO (`engine-iso build`) boot it as a DVD or a USB stick under
SeaBIOS or OVMF and drive the real text UI over the serial console (qemu/console.py reads the
screen with pyte). Cells that need no ISO run the same installer inside a tool guest
(qemu/guest.py: the host's kernel, this checkout over 9p, a real guest disk): the power cut and
the installer-over-serial flows. Every installed disk is then booted alone and the sample
Engine's status line says what booted.

Environment: ENGINE_POWERCUT_RUNS (default 10), ENGINE_POWERCUT_SEED, ENGINE_QEMU_ACCEL (tcg).
"""

from __future__ import annotations

import os
import random
import re
import time
from pathlib import Path

import pytest

from qemu.disks import answer_file, flatten, installer_command, vm_hashes
from qemu.guest import DONE, tool_guest
from qemu.harness import boot_installed_disk as boot_disk
from qemu.harness import make_overlay

pytestmark = pytest.mark.qemu

REPO = Path(__file__).resolve().parents[2]
POWERCUT_RUNS = int(os.environ.get("ENGINE_POWERCUT_RUNS", "10"))
POWERCUT_SEED = int(os.environ.get("ENGINE_POWERCUT_SEED", "5021"))
GUEST_TIMEOUT = 600
START = "@@UPGRADE-START"
FIRST_WRITE = r"^\[write-slot\]"  # an upgrade's first disk write: the cuts land after it
GUEST_MODULES = "ahci sd_mod nvme ext4 vfat nls_cp437 nls_iso8859_1 nls_ascii loop qemu_fw_cfg"


def guest_script(path: Path, body: str) -> Path:
    """A script for the tool guest: drivers loaded, in this checkout, then body."""
    path.write_text(f"modprobe -a {GUEST_MODULES} 2>/dev/null\ncd {REPO}\n{body}\n")
    return path


def upgrade_script(tmp: Path, payload: Path, target: str = "/dev/sda") -> Path:
    answers = answer_file(tmp / "upgrade.toml", target, payload, action="upgrade")
    installer = " ".join(installer_command())
    # stdin from /dev/null: a tool run by the installer must never wait on the console.
    return guest_script(
        tmp / "upgrade.sh", f"echo {START}\n{installer} --answers {answers} </dev/null"
    )


def last_phase(serial: str) -> str:
    phases = re.findall(r"^\[([a-z-]+)\][^\n]*$", serial, re.MULTILINE)
    return phases[-1] if phases else "(before the first phase)"


@pytest.mark.cell("power cut during upgrade (tool guest)")
def test_power_cut_during_upgrade(tmp_path, payloads, engine45_disk, tool_initramfs):
    """Kill QEMU at seeded random moments while the guest upgrades 4.5 → 5.0; each time the
    disk boots (4.5 on A or 5.0 on B) and the VM files are byte-identical."""
    base, hashes = engine45_disk
    assert hashes, "the prepared disk has no VM files"
    script = upgrade_script(tmp_path, payloads["5.0"])

    # Reference run: the whole upgrade, to measure its window under this machine's load.
    ref = make_overlay(base, tmp_path / "reference.qcow2")
    vm = tool_guest(script, tool_initramfs, ref, workdir=tmp_path / "reference",
                    disk_format="qcow2", cache="writeback")  # fmt: skip
    with vm:
        vm.wait_for(FIRST_WRITE, timeout=GUEST_TIMEOUT)
        started = time.monotonic()
        done = vm.wait_for(re.escape(DONE) + r"(\d+)", timeout=GUEST_TIMEOUT)
        window = time.monotonic() - started
        vm.wait_exit(60)
    serial = vm.serial_text()
    assert done.group(1) == "0", serial[-3000:]
    assert "upgraded on /dev/sda, slot B (was 4.5" in serial
    groups, _ = boot_disk(ref, tmp_path / "reference-boot", disk_format="qcow2")
    assert groups[:3] == ("5.0", "50", "B")
    assert vm_hashes(flatten(ref, tmp_path / "reference.raw")) == hashes
    (tmp_path / "reference.raw").unlink()

    rng = random.Random(POWERCUT_SEED)
    outcomes = []
    for run in range(POWERCUT_RUNS):
        overlay = make_overlay(base, tmp_path / f"cut-{run}.qcow2")
        delay = rng.uniform(0.0, window * 1.1)
        firmware = rng.choice(["bios", "uefi"])
        vm = tool_guest(script, tool_initramfs, overlay, workdir=tmp_path / f"cut-{run}",
                        disk_format="qcow2", cache="writeback")  # fmt: skip
        with vm:
            vm.wait_for(FIRST_WRITE, timeout=GUEST_TIMEOUT)
            time.sleep(delay)
            vm.kill()  # the power cut: QEMU dies, whatever the guest had in flight is lost
        phase = last_phase(vm.serial_text())
        groups, _ = boot_disk(overlay, tmp_path / f"cut-{run}-boot", firmware=firmware,
                              disk_format="qcow2")  # fmt: skip
        version, _build, slot, _vms = groups
        outcomes.append(f"run {run}: cut after {delay:.2f}s in [{phase}] → {version} slot {slot}")
        assert (version, slot) in (("4.5", "A"), ("5.0", "B")), outcomes[-1]
        raw = flatten(overlay, tmp_path / f"cut-{run}.raw")
        assert vm_hashes(raw) == hashes, f"VM files changed: {outcomes[-1]}"
        raw.unlink()
        overlay.unlink()
    print(f"\nupgrade window {window:.1f} s; seed {POWERCUT_SEED}")
    print("\n".join(outcomes))
