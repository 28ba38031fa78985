"""Torn writes on the ESP: a power cut between the sectors of one file update.

For every ESP write an upgrade makes (the new slot's boot options, the marker's slot table, the
boot switch, the marker's version switch), the sectors it changes are recorded, and every subset
of them is applied to the disk as it was before (a power cut lets any subset of in-flight sector
writes land). Each torn state must read back as the old file or the new one, and detection must
never call the disk damaged (nor advise the wiping reinstall) while a slot is intact and boots.
"""

from __future__ import annotations

import itertools
import random
import shutil
import subprocess
from pathlib import Path

from diskhelpers import MiB, add_vms, part

from engine_installer.base.progress import ignore_progress
from engine_installer.install.live import live_snapshot
from engine_installer.install.plan import Plan
from engine_installer.install.prepare import prepare
from engine_installer.install.runner import _Executor, run_plan
from engine_installer.machine.detect import inspect_disk
from engine_installer.machine.snapshot import DiskInfo
from engine_installer.ondisk.bootenv import parse_bootenv
from engine_installer.ondisk.esp import read_file
from engine_installer.ondisk.gpt import inspect_gpt
from engine_installer.ondisk.layout import GRUBENV_PATH, LABEL_ESP, SLOT_ENV_PATHS
from engine_installer.ondisk.marker import read_markers
from engine_installer.ondisk.payload import load_manifest

SECTOR = 512
SIZE = 720 * MiB
MAX_EXHAUSTIVE = 12  # up to 4096 subsets per write; beyond, a seeded sample
SAMPLE = 600
DETECTIONS = 12  # full detections per write (each reads the whole disk's structures)


def _sectors(device: str) -> list[bytes]:
    data = Path(device).read_bytes()
    return [data[i : i + SECTOR] for i in range(0, len(data), SECTOR)]


def _subsets(changed: list[int], seed: int) -> list[tuple[int, ...]]:
    if len(changed) <= MAX_EXHAUSTIVE:
        return [
            combo
            for size in range(len(changed) + 1)
            for combo in itertools.combinations(changed, size)
        ]
    rng = random.Random(seed)
    picks = {(), tuple(changed)} | {(c,) for c in changed}
    while len(picks) < SAMPLE:
        picks.add(tuple(sorted(rng.sample(changed, rng.randint(1, len(changed) - 1)))))
    return sorted(picks, key=len)


def _read_state(image: Path, esp_offset: int) -> tuple[dict | None, object, dict]:
    marker = read_markers(lambda p: read_file(str(image), p, esp_offset)).marker
    env_raw = read_file(str(image), GRUBENV_PATH, esp_offset)
    env = parse_bootenv(env_raw) if env_raw is not None else None
    slots = {s: read_file(str(image), path, esp_offset) for s, path in SLOT_ENV_PATHS.items()}
    return marker, env, slots


def test_every_torn_esp_write_of_an_upgrade_leaves_old_or_new(make_loop, payloads, tmp_path):
    disk = make_loop(SIZE)
    plan = Plan(target=disk, eula_accepted=True, lab_override=True)
    run_plan(plan, load_manifest(payloads["4.5"]))
    add_vms(disk, {"desk": ("local", "4.5"), "build": ("custom", "4.5")})
    manifest = load_manifest(payloads["5.0"])
    prepared = prepare(plan, live_snapshot(manifest, only=[disk]), manifest)
    assert prepared.kind == "upgrade"
    esp_dev = part(disk, 2)
    esp_offset = next(p.start for p in inspect_gpt(disk).partitions if p.name == LABEL_ESP)
    image = tmp_path / "torn.img"
    executor = _Executor(prepared, ignore_progress)
    table = []
    for index, action in enumerate(prepared.actions):
        if action.target != esp_dev:
            executor.run(action)
            continue
        subprocess.run(["sync"], check=True)
        shutil.copyfile(disk, image)  # the whole disk as it is before this write
        before = _sectors(esp_dev)
        executor.run(action)
        subprocess.run(["sync"], check=True)
        after = _sectors(esp_dev)
        changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
        assert changed, action.title
        old = _read_state(image, esp_offset)
        with open(image, "r+b") as handle:
            for i in changed:
                handle.seek(esp_offset + i * SECTOR)
                handle.write(after[i])
        new = _read_state(image, esp_offset)
        subsets = _subsets(changed, seed=index)
        detect_at = set(range(0, len(subsets), max(1, len(subsets) // DETECTIONS)))
        for number, subset in enumerate(subsets):
            with open(image, "r+b") as handle:
                for i in changed:
                    handle.seek(esp_offset + i * SECTOR)
                    handle.write(after[i] if i in subset else before[i])
            marker, env, slots = _read_state(image, esp_offset)
            where = f"{action.title}, sectors {subset} of {changed}"
            assert marker in (old[0], new[0]), where
            assert env in (old[1], new[1]), where
            # The slot that boots today keeps its boot options whatever lands.
            active = env.active if env else "A"
            assert slots[active] in (old[2][active], new[2][active]), where
            if number in detect_at:
                found = inspect_disk(DiskInfo(path=str(image), size=SIZE), manifest)
                assert found.state in ("upgradeable", "same-version"), (where, found)
                assert found.version in ("4.5", "5.0") and len(found.vms) == 2, (where, found)
        table.append(f"{action.title}: {len(changed)} sectors, {len(subsets)} torn states")
    print("\n".join(table))
    assert len(table) == 4
