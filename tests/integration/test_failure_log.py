"""The log of a failed run is saved where it outlives the reboot, and saving it costs nothing.

On a real loop disk with Engine 4.5 and VMs: the log goes onto the ESP as logs/<name>, and
every torn state of that write (any subset of the sectors it changes, as a power cut may
leave them) keeps every file a boot or detection reads, and the disk is still the same
upgradeable Engine with its VMs. A writable boot medium gets the log first; a failure before
anything was written leaves the disk alone.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

from diskhelpers import MiB, add_vms, part, tree_hashes

from engine_installer.install.failure_log import save_failure_log, save_to_esp
from engine_installer.install.live import live_snapshot
from engine_installer.install.plan import Plan
from engine_installer.install.prepare import prepare
from engine_installer.install.runner import run_plan
from engine_installer.machine.detect import inspect_disk
from engine_installer.machine.snapshot import DiskInfo
from engine_installer.ondisk.esp import read_file
from engine_installer.ondisk.gpt import inspect_gpt
from engine_installer.ondisk.layout import GRUBENV_PATH, LABEL_ESP, SLOT_ENV_PATHS
from engine_installer.ondisk.payload import load_manifest

SECTOR = 512
SIZE = 720 * MiB
READ_BY_BOOT = [
    GRUBENV_PATH,
    *SLOT_ENV_PATHS.values(),
    "engine/install.json",
    "engine/install.2.json",
    "EFI/BOOT/BOOTX64.EFI",
    "EFI/BOOT/grub.cfg",
    "boot/grub/grub.cfg",
]
SAMPLE = 400


def _engine_disk(make_loop, payloads) -> tuple[str, Plan]:
    disk = make_loop(SIZE)
    plan = Plan(target=disk, eula_accepted=True, lab_override=True)
    run_plan(plan, load_manifest(payloads["4.5"]))
    add_vms(disk, {"desk": ("local", "4.5"), "build": ("custom", "4.5")})
    return disk, plan


def _files(image: str, offset: int) -> dict[str, bytes | None]:
    return {path: read_file(image, path, offset) for path in READ_BY_BOOT}


def test_torn_log_writes_on_the_esp_keep_every_boot_file(make_loop, payloads, tmp_path):
    disk, _plan = _engine_disk(make_loop, payloads)
    manifest = load_manifest(payloads["5.0"])
    esp = part(disk, 2)
    offset = next(p.start for p in inspect_gpt(disk).partitions if p.name == LABEL_ESP)
    subprocess.run(["sync"], check=True)
    before_disk = tmp_path / "before.img"
    shutil.copyfile(disk, before_disk)
    before = Path(esp).read_bytes()
    old = _files(disk, offset)
    present = {path for path, data in old.items() if data is not None}
    assert {GRUBENV_PATH, SLOT_ENV_PATHS["A"], "EFI/BOOT/BOOTX64.EFI"} <= present, present
    assert present & {"engine/install.json", "engine/install.2.json"}, present
    vms_before = tree_hashes(disk)

    data = b"".join(f"line {i} of the failed run\n".encode() for i in range(20000))
    where = save_to_esp(data, disk, "engine-installer-20261130T101500Z-failed.log")
    assert where == f"{esp}:/logs/engine-installer-20261130T101500Z-failed.log"
    subprocess.run(["sync"], check=True)
    assert read_file(esp, "logs/engine-installer-20261130T101500Z-failed.log") == data
    after = Path(esp).read_bytes()
    changed = [
        i for i in range(0, len(before), SECTOR) if before[i : i + SECTOR] != after[i : i + SECTOR]
    ]
    assert changed and _files(disk, offset) == old and tree_hashes(disk) == vms_before

    rng = random.Random(16)
    subsets = [(), tuple(changed)] + [(c,) for c in changed[:50]]
    while len(subsets) < SAMPLE:
        subsets.append(tuple(sorted(rng.sample(changed, rng.randint(1, len(changed) - 1)))))
    image = tmp_path / "torn.img"
    shutil.copyfile(before_disk, image)
    for number, subset in enumerate(subsets):
        with open(image, "r+b") as handle:
            for i in changed:
                handle.seek(offset + i)
                handle.write(after[i : i + SECTOR] if i in subset else before[i : i + SECTOR])
        assert _files(str(image), offset) == old, f"sectors {subset}"
        if number % 50 == 0:
            found = inspect_disk(DiskInfo(path=str(image), size=SIZE), manifest)
            assert found.state == "upgradeable" and len(found.vms) == 2, (subset, found)
    print(f"\nlog on the ESP: {len(changed)} sectors changed, {len(subsets)} torn states checked")


def test_the_boot_medium_first_and_nothing_before_a_write(make_loop, payloads, tmp_path):
    disk, plan = _engine_disk(make_loop, payloads)
    manifest = load_manifest(payloads["5.0"])
    prepared = prepare(plan, live_snapshot(manifest, only=[disk]), manifest)
    log = tmp_path / "installer.log"
    log.write_text("step 3 of 8 failed\n")
    medium = tmp_path / "stick"
    medium.mkdir()
    sentence = save_failure_log(log, prepared, written=True, medium_root=medium)
    saved = list((medium / "engine-installer-logs").iterdir())
    assert len(saved) == 1 and saved[0].read_text() == "step 3 of 8 failed\n"
    assert sentence == f"The log was saved on the boot medium: {saved[0]}"
    esp = part(disk, 2)
    assert read_file(esp, "logs") is None  # the disk was not touched for it

    esp_before = Path(esp).read_bytes()
    read_only = tmp_path / "iso-medium"  # a file where the medium's directory would be
    read_only.write_text("")
    sentence = save_failure_log(log, prepared, written=False, medium_root=read_only)
    assert "could not be saved to a disk" in sentence and str(log) in sentence
    assert Path(esp).read_bytes() == esp_before  # refused before writing: disk untouched

    sentence = save_failure_log(log, prepared, written=True, medium_root=read_only)
    assert sentence.startswith(f"The log was saved on the EFI system partition of {disk}: ")
