"""Boot disks installed by run_plan in QEMU (TCG) under SeaBIOS and OVMF.

Install 4.5 onto a loop disk with the real runner, detach it, boot its backing file and read
the sample Engine's console line; then upgrade to 5.0 and boot again: slot B, version 5.0.
Four boots of ~10-30 s each under TCG (more on a busy machine).
"""

from __future__ import annotations

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


def _install(image: Path, payload: Path) -> None:
    """run_plan onto image through a loop device that is detached again before booting."""
    # The existing table's partition nodes are added: an upgrade needs them.
    with loops.loop_device(image, loops.INTEGRATION) as device:
        run_plan(Plan(target=device, eula_accepted=True, lab_override=True), load_manifest(payload))


def _boot(image: Path, firmware: str, workdir: Path, snapshot: bool) -> tuple[str, str, str]:
    with VM(disk=image, firmware=firmware, workdir=workdir, snapshot=snapshot) as vm:
        return vm.wait_for(ENGINE_LINE, timeout=BOOT_TIMEOUT).groups()[:3]


def test_installed_disk_boots_bios_and_uefi_then_upgrade(sample_payloads, tmp_path):
    image = tmp_path / "laptop.img"
    with open(image, "wb") as handle:
        handle.truncate(int(1.5 * GiB))
    _install(image, sample_payloads["4.5"])
    for firmware in ("bios", "uefi"):
        found = _boot(image, firmware, tmp_path / f"vm-{firmware}", snapshot=True)
        assert found == ("4.5", "45", "A"), firmware
    _install(image, sample_payloads["5.0"])  # auto → upgrade into slot B
    assert _boot(image, "uefi", tmp_path / "vm-upgraded", snapshot=False) == ("5.0", "50", "B")
    assert _boot(image, "bios", tmp_path / "vm-again", snapshot=True) == ("5.0", "50", "B")
