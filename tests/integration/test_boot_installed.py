"""Boot disks installed by run_plan in QEMU (TCG) under SeaBIOS and OVMF.

Install 4.5 onto a loop disk with the real runner, detach it, boot its backing file and read
the sample Engine's console line; then upgrade to 5.0 with another keyboard and kernel argument
and boot again: slot B, version 5.0, and the booted kernel got the upgrade's options. Four boots
of ~10-30 s each under TCG (more on a busy machine).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from diskhelpers import GiB

from engine_installer.install.plan import Plan
from engine_installer.install.runner import run_plan
from engine_installer.iso.sample_payload import build_sample_payload
from engine_installer.ondisk.payload import load_manifest
from qemu import loops
from qemu.harness import VM, qemu_available

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(not qemu_available(), reason="qemu-system-x86 / ovmf not installed"),
]
ENGINE_LINE = r"ENGINE (\S+) build (\S+) slot=([AB])"
BOOT_TIMEOUT = 300


@pytest.fixture(scope="module")
def sample_payloads(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("sample")
    return {
        v: build_sample_payload(v, base / v, build=b).parent
        for v, b in (("4.5", "45"), ("5.0", "50"))
    }


def _install(image: Path, payload: Path, **options) -> None:
    """run_plan onto image through a loop device that is detached again before booting."""
    # The existing table's partition nodes are added: an upgrade needs them.
    with loops.loop_device(image, loops.INTEGRATION) as device:
        plan = Plan(target=device, eula_accepted=True, lab_override=True, **options)
        run_plan(plan, load_manifest(payload))


def _boot(image: Path, firmware: str, workdir: Path, snapshot: bool) -> tuple[str, ...]:
    """(version, build, slot) the sample Engine reports, and its kernel command line."""
    with VM(disk=image, firmware=firmware, workdir=workdir, snapshot=snapshot) as vm:
        groups = vm.wait_for(ENGINE_LINE, timeout=BOOT_TIMEOUT).groups()[:3]
        cmdline = re.search(r"ENGINE-CMDLINE (.*)", vm.serial_text())
    assert cmdline, "the sample Engine printed no ENGINE-CMDLINE line"
    return (*groups, cmdline.group(1).strip())


def test_installed_disk_boots_bios_and_uefi_then_upgrade(sample_payloads, tmp_path):
    image = tmp_path / "laptop.img"
    with open(image, "wb") as handle:
        handle.truncate(int(1.5 * GiB))
    _install(image, sample_payloads["4.5"], keyboard="de", kernel_args=["engine.test=one"])
    for firmware in ("bios", "uefi"):
        *found, cmdline = _boot(image, firmware, tmp_path / f"vm-{firmware}", snapshot=True)
        assert tuple(found) == ("4.5", "45", "A"), firmware
        assert cmdline.split()[-2:] == ["engine.keymap=de", "engine.test=one"], cmdline
    # auto → upgrade into slot B, with the keyboard and kernel argument chosen now.
    _install(image, sample_payloads["5.0"], keyboard="us", kernel_args=["engine.test=two"])
    *found, cmdline = _boot(image, "uefi", tmp_path / "vm-upgraded", snapshot=False)
    assert tuple(found) == ("5.0", "50", "B")
    assert cmdline.split()[-2:] == ["engine.keymap=us", "engine.test=two"], cmdline
    *found, _cmdline = _boot(image, "bios", tmp_path / "vm-again", snapshot=True)
    assert tuple(found) == ("5.0", "50", "B")
