"""Update kits end to end in QEMU (TCG): a laptop disk with Engine 4.5, installed from a signed
4.5 installer ISO (its trust store filled from it); the tool guest (qemu/guest.py) acts as the
running Engine: storage mounted read-write, slot A read-only, `engine-update apply` with a
signed installer ISO built by `engine-iso build --sign-key`; then the disk boots alone.

Cells: the 5.0 kit applied on the running side, with power cuts (QEMU killed, the guest's
unflushed writes lost) during apply, each followed by status and a retried apply that succeeds,
VM files identical; the restart boots `ENGINE 5.0 ... slot=B` and status turns blank. A kit
whose Engine cannot start (sample payload --broken-init) is tried three times, GRUB falls back,
Engine 4.5 runs and status says Failed with the reason.

Environment: ENGINE_KIT_POWERCUT_RUNS (default 2), ENGINE_KIT_POWERCUT_SEED.
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
import time
from pathlib import Path

import pytest

from qemu.disks import SAMPLE_VMS, flatten, install_on_image, storage_files, vm_hashes
from qemu.guest import DONE, tool_guest
from qemu.harness import ENGINE_LINE, boot_installed_disk, laptop, make_overlay

# One xdist worker runs the module: its module fixtures (signed kits, disk) are built once.
pytestmark = [pytest.mark.qemu, pytest.mark.xdist_group("update-kit")]

REPO = Path(__file__).resolve().parents[2]
GUEST_TIMEOUT = 600
POWERCUT_RUNS = int(os.environ.get("ENGINE_KIT_POWERCUT_RUNS", "2"))
POWERCUT_SEED = int(os.environ.get("ENGINE_KIT_POWERCUT_SEED", "5045"))
GUEST_MODULES = "ahci sd_mod ext4 vfat nls_cp437 nls_iso8859_1 nls_ascii"
UPDATE = f"{sys.executable} -m engine_installer.update.cli --disk /dev/sda"
# Three trial boots of an Engine that fails and reboots, then slot A: minutes under TCG.
FALLBACK_TIMEOUT = 900


@pytest.fixture(scope="module")
def kit_key(tmp_path_factory) -> tuple[Path, Path]:
    from tests.kit_helpers import make_key

    return make_key(tmp_path_factory.mktemp("kit-key"), "engine-kits", "Engine kits")


def _signed_iso(payload: Path, out: Path, key: tuple[Path, Path]) -> Path:
    from engine_installer.iso.builder import build_iso
    from tests.iso_helpers import EPOCH

    os.environ.setdefault("SOURCE_DATE_EPOCH", str(EPOCH))
    build_iso(payload, out, sign_key=key[0], sign_cert=key[1], say=lambda _line: None)
    return out


@pytest.fixture(scope="module")
def kits(tmp_path_factory, payloads, kit_key) -> dict[str, Path]:
    """Installer ISOs signed by engine-iso build: 4.5, 5.0, and 5.0 build 51 that cannot
    start (the full ISOs, as imaging staff make them; the live base comes from the cache)."""
    from engine_installer.iso.sample_payload import build_sample_payload

    work = tmp_path_factory.mktemp("kits")
    broken = build_sample_payload("5.0", work / "broken-5.0", build="51", broken_init=True)
    return {
        "4.5": _signed_iso(payloads["4.5"], work / "engine-4.5.iso", kit_key),
        "5.0": _signed_iso(payloads["5.0"], work / "engine-5.0.iso", kit_key),
        "broken": _signed_iso(broken.parent, work / "engine-5.0-broken.iso", kit_key),
    }


@pytest.fixture(scope="module")
def signed45_disk(tmp_path_factory, kits) -> tuple[Path, dict[str, str]]:
    """Engine 4.5 and three VMs, installed from the signed 4.5 ISO by the real unattended
    installer (read-only base: cells use qcow2 overlays)."""
    image = tmp_path_factory.mktemp("disk45-signed") / "engine-4.5.img"
    hashes = install_on_image(image, kits["4.5"], vms=SAMPLE_VMS)
    image.chmod(0o444)
    return image, hashes


def running_engine_script(path: Path, body: str) -> Path:
    """A tool-guest script: the disk mounted as its running Engine has it, then body. body may
    call `save NAME` to keep `engine-update status --json` in e2e/NAME.json on the storage
    partition; the host reads it once the guest is off (long output over the serial console
    is not reliable on a loaded host: bytes come out twice)."""
    path.write_text(
        f"modprobe -a {GUEST_MODULES} 2>/dev/null\ncd {REPO}\n"
        "mkdir -p /run/storage /run/engine-root\n"
        "mount -t ext4 /dev/sda5 /run/storage && mount -t ext4 -o ro /dev/sda3 /run/engine-root"
        " || echo '@@MOUNT-FAILED'\n"
        "mkdir -p /run/storage/e2e\n"
        # (a cut may land in `save final`: write aside, then rename)
        f"save() {{ {UPDATE} status --json </dev/null >/run/storage/e2e/$1.new && "
        "mv /run/storage/e2e/$1.new /run/storage/e2e/$1.json; sync; }\n"
        f"{body}\n"
        "save final\n"
        "umount /run/engine-root /run/storage; sync\n"
    )
    return path


def storage_outputs(disk: Path, work: Path) -> tuple[dict[str, dict], dict[str, str]]:
    """(e2e/NAME.json → status, VM file hashes) from the storage partition of a qcow2 disk."""
    raw = flatten(disk, work / "flat.raw")
    try:
        files = storage_files(raw, "e2e")
        statuses = {
            name.removesuffix(".json"): json.loads(data)
            for name, data in files.items()
            if name.endswith(".json")
        }
        return statuses, vm_hashes(raw)
    finally:
        raw.unlink()


def run_guest(script: Path, initramfs: Path, disk: Path, workdir: Path) -> str:
    vm = tool_guest(script, initramfs, disk, workdir=workdir, disk_format="qcow2",
                    cache="writeback")  # fmt: skip
    with vm:
        vm.wait_for(re.escape(DONE) + r"\d+", timeout=GUEST_TIMEOUT)
        vm.wait_exit(120)
    serial = vm.serial_text()
    assert "@@MOUNT-FAILED" not in serial, serial[-3000:]
    return serial


def apply_script(path: Path, kit: Path) -> Path:
    return running_engine_script(path, f"{UPDATE} apply {kit} --lab-override </dev/null")


@pytest.mark.cell("update kit that cannot start: GRUB falls back to 4.5, status Failed")
def test_kit_that_cannot_start_falls_back(tmp_path, tool_initramfs, signed45_disk, kits):
    base, hashes = signed45_disk
    disk = make_overlay(base, tmp_path / "laptop.qcow2")
    run_guest(apply_script(tmp_path / "apply.sh", kits["broken"]), tool_initramfs, disk,
              tmp_path / "apply")  # fmt: skip
    statuses, _vms = storage_outputs(disk, tmp_path)
    assert statuses["final"]["status"] == "Installed (Reboot Required)", statuses

    # The restart: slot B is tried three times (its init fails and reboots), then slot A.
    vm = laptop(disk, workdir=tmp_path / "restart", disk_format="qcow2", memory_mb=1024)
    with vm:
        match = vm.wait_for(ENGINE_LINE, timeout=FALLBACK_TIMEOUT)
        console = vm.serial_text()
    assert match.groups()[:3] == ("4.5", "45", "A")
    assert console.count("Engine 5.0 was built not to start") == 3, console[-3000:]
    assert len(re.findall(r"booting slot B from \S+, trial=1", console)) == 3

    run_guest(running_engine_script(tmp_path / "status.sh", "true"), tool_initramfs, disk,
              tmp_path / "status")  # fmt: skip
    statuses, vms = storage_outputs(disk, tmp_path)
    status = statuses["final"]
    assert status["status"] == "Failed", status
    assert status["reason"] == "Engine 5.0 did not start; Engine 4.5 is running again"
    assert vms == hashes


@pytest.mark.cell("update kit 4.5 → 5.0 on the running Engine, power cuts, restart → 5.0")
def test_kit_applied_on_the_running_engine(tmp_path, tool_initramfs, signed45_disk, kits):
    """The running side (tool guest) applies the signed 5.0 kit. Each guest boot: status, an
    apply that must succeed (the first one, then the retry after a cut), status; then one more
    apply that QEMU's kill cuts at a seeded moment after its first step began (the guest's
    unflushed writes are lost, as in a power cut), read by the next boot. At the end the disk
    restarts into Engine 5.0 from slot B, and status on the running side is blank."""
    base, hashes = signed45_disk
    disk = make_overlay(base, tmp_path / "laptop.qcow2")
    kit = kits["5.0"]
    body = (
        "save found; echo @@FOUND\n"
        f"{UPDATE} apply {kit} --lab-override </dev/null\n"
        f"save retried; echo @@CUT-READY; {UPDATE} apply {kit} --lab-override </dev/null"
    )
    script = running_engine_script(tmp_path / "cycle.sh", body)
    rng = random.Random(POWERCUT_SEED)
    outcomes = []
    for run in range(POWERCUT_RUNS + 1):
        last = run == POWERCUT_RUNS
        vm = tool_guest(script, tool_initramfs, disk, workdir=tmp_path / f"boot-{run}",
                        disk_format="qcow2", cache="writeback")  # fmt: skip
        with vm:
            # The retry's length on this machine now: the cut lands anywhere in the next apply.
            found = vm.wait_for("@@FOUND", timeout=GUEST_TIMEOUT)
            vm.wait_for(r"^Step 1 of \d+:", timeout=GUEST_TIMEOUT, start=found.end())
            began = time.monotonic()
            ready = vm.wait_for("@@CUT-READY", timeout=GUEST_TIMEOUT)
            window = time.monotonic() - began
            if last:
                vm.wait_for(re.escape(DONE) + r"\d+", timeout=GUEST_TIMEOUT)
                vm.wait_exit(120)
            else:
                vm.wait_for(r"^Step 1 of \d+:", timeout=GUEST_TIMEOUT, start=ready.end())
                delay = rng.uniform(0.0, window * 1.1)
                time.sleep(delay)
                vm.kill()  # the power cut: whatever the guest had not flushed is lost
            serial = vm.serial_text()
        steps = re.findall(r"^(Step \d+ of \d+: [^\r\n]*)", serial[ready.end() :], re.M)
        statuses, vms = storage_outputs(disk, tmp_path)
        before = statuses["found"]
        if run:
            # What the previous cut left: explained, never Signalled or blank.
            assert before["status"] in ("Failed", "Installed (Reboot Required)"), before
            if before["status"] == "Failed":
                assert "interrupted" in before["reason"], before
                assert before["reason"].endswith("run engine-update apply again"), before
        assert statuses["retried"]["status"] == "Installed (Reboot Required)", serial[-3000:]
        assert vms == hashes
        outcomes.append(
            f"boot {run}: found {before['status'] or '(blank)'}; retry {window:.1f}s"
            + ("" if last else f"; cut {delay:.1f}s after step 1 began, in [{steps[-1]}]")
        )
    print(f"\nseed {POWERCUT_SEED}\n" + "\n".join(outcomes))
    assert "Checking engine-5.0.iso: Engine 5.0 (build 50), signed by CN=Engine kits" in serial
    final = statuses["final"]
    assert (final["status"], final["kit"]["version"], final["target_slot"]) == (
        "Installed (Reboot Required)",
        "5.0",
        "B",
    )

    groups, _seconds = boot_installed_disk(disk, tmp_path / "restart", disk_format="qcow2")
    assert groups[:3] == ("5.0", "50", "B")
    run_guest(running_engine_script(tmp_path / "status.sh", "true"), tool_initramfs, disk,
              tmp_path / "status")  # fmt: skip
    statuses, vms = storage_outputs(disk, tmp_path)
    assert statuses["final"]["status"] == "", statuses["final"]
    assert statuses["final"]["engine"] == {"version": "5.0", "build": "50", "slot": "B"}
    assert vms == hashes
