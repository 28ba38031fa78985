"""Seeded power cuts over the whole upgrade (4.5 → 5.0 with VMs) and the whole reinstall.

Per seed: the real installer runs in its own process group on a loop disk; when the disk has
taken a random number of written sectors (read from /sys/block/loopN/stat; the phase is picked
first, so short phases such as the boot switch get cuts too), the whole process tree is frozen
with SIGSTOP and the loop device's backing file is copied as it is (no sync: what a power cut
skips is lost), then the tree is SIGKILLed. On the copy:

- upgrade: GRUB's files are there; the slot GRUB's boot logic picks (engine_active /
  engine_trial / engine_tries, as in the installed grub.cfg) hashes to the 4.5 or the 5.0 root
  image, a trial slot to 5.0 with 4.5 as its fallback; every VM file is byte-identical; detection
  names what boots and never advises a wiping reinstall;
- reinstall: the disk is recognisably incomplete, or complete with a sound slot;
- a retried run of the same answer file completes and leaves the right final state.

ENGINE_POWER_CUT_SEEDS (default 30) sets the number of seeds; every third one is a reinstall.
A table (seed, cut, phase reached, outcome) is printed at the end.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from diskhelpers import MiB, write_answers
from faulthelpers import (
    Disk,
    attached,
    booted_slot,
    clean_leftovers,
    detect_json,
    detected_boot,
    disk_copy,
    grub_files_present,
    installer,
    kill_tree,
    popen_installer,
    signal_tree,
    slot_sha256,
    sparse_copy,
    table_is_clean,
    wait_until,
    write_sectors,
)

from qemu.disks import storage_hashes

SEEDS = int(os.environ.get("ENGINE_POWER_CUT_SEEDS", "30"))
ROOT_SIZE = 24 * MiB  # root.img of the integration payloads
ROWS: list[tuple[str, ...]] = []


def kind_of(seed: int) -> str:
    return "reinstall" if seed % 3 == 2 else "upgrade"


@dataclass
class Phase:
    label: str  # the progress line that starts it
    start: int  # sectors written when it started
    end: int  # ... when the next line came


def _label(line: str) -> str:
    return line.strip()[:46]


def _answer_file(path: Path, disk: Disk, payloads, kind: str) -> Path:
    action = "auto" if kind == "upgrade" else "reinstall"
    return write_answers(path, disk.device, payloads["5.0"], action=action)


@pytest.fixture(scope="module")
def phases(engine45_image, payloads, tmp_path_factory) -> dict[str, list[Phase]]:
    """One uninterrupted run of each kind: how many sectors each phase writes."""
    result = {}
    for kind in ("upgrade", "reinstall"):
        base = tmp_path_factory.mktemp(f"calibrate-{kind}")
        with disk_copy(engine45_image.path, base) as disk:
            file = _answer_file(base / "a.toml", disk, payloads, kind)
            start = write_sectors(disk.device)
            env = {"ENGINE_INSTALLER_LOG_DIR": str(base / "logs")}
            proc = popen_installer(
                ["--answers", str(file)], env, subprocess.PIPE, subprocess.DEVNULL
            )
            marks = []
            for raw in proc.stdout:
                marks.append((_label(raw.decode(errors="replace")), write_sectors(disk.device)))
            assert proc.wait(timeout=300) == 0, marks
            total = write_sectors(disk.device)
        bounds = [n for _label_, n in marks[1:]] + [total]
        result[kind] = [
            Phase(label, n - start, end - start)
            for (label, n), end in zip(marks, bounds, strict=True)
            if end > n
        ]
        assert result[kind], f"{kind}: no phase wrote anything"
    return result


@pytest.fixture(scope="module", autouse=True)
def seed_table(request):
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not ROWS:
        return
    header = ("seed", "kind", "cut at", "phase reached", "at the cut", "outcome")
    widths = [6, 11, 11, 48, 36, 0]
    with capture.global_and_fixture_disabled():  # teardown output is captured otherwise
        reporter.write_line("")
        reporter.section("power cuts")
        for row in (header, *ROWS):
            reporter.write_line("".join(f"{c:<{w}}" for c, w in zip(row, widths, strict=True)))


def _versions(image) -> dict[str, str]:
    return {sha: version for version, sha in image.root_sha256.items()}


def _check_upgrade_cut(cut: Disk, image, payloads, tmp: Path) -> str:
    """What a power cut mid-upgrade must leave; returns what boots, for the table."""
    assert grub_files_present(cut.device) == [], "GRUB's files are damaged"
    slot, fallback = booted_slot(cut.device, tmp)
    version = _versions(image).get(slot_sha256(cut.device, slot, ROOT_SIZE))
    assert version in ("4.5", "5.0"), f"slot {slot}, which GRUB boots, holds no known Engine"
    if slot != fallback:
        assert version == "5.0", f"trial slot {slot} holds {version}"
        fallback_version = _versions(image).get(slot_sha256(cut.device, fallback, ROOT_SIZE))
        assert fallback_version == "4.5", f"fallback slot {fallback} holds {fallback_version}"
    assert storage_hashes(cut.device) == image.vm_hashes, "VM files changed"
    found = detect_json(cut.device, payloads["5.0"])
    assert len(found) == 1, found
    entry = found[0]
    assert entry["state"] != "foreign", entry
    assert "reinstall" not in json.dumps(entry).lower(), f"advises a wipe: {entry}"
    said = detected_boot(entry)
    assert said == (version, slot), f"GRUB boots {version} in slot {slot}; detection: {entry}"
    trial = " (trial)" if slot != fallback else ""
    return f"{version} in {slot}{trial}, {entry['state']}"


def _check_upgrade_final(cut: Disk, image, payloads, tmp: Path) -> None:
    assert grub_files_present(cut.device) == []
    assert table_is_clean(cut.device)
    slot, _fallback = booted_slot(cut.device, tmp)
    assert _versions(image).get(slot_sha256(cut.device, slot, ROOT_SIZE)) == "5.0"
    assert storage_hashes(cut.device) == image.vm_hashes, "VM files changed"
    [entry] = detect_json(cut.device, payloads["5.0"])
    assert entry["state"] == "same-version", entry
    assert detected_boot(entry) == ("5.0", slot), entry


COMPLETE_STATES = ("upgradeable", "same-version", "newer-than-media")


def _check_reinstall_cut(cut: Disk, image, payloads, tmp: Path) -> str:
    """Recognisably incomplete, or complete with a slot that holds a whole Engine."""
    found = detect_json(cut.device, payloads["5.0"])
    assert len(found) <= 1, found
    state = found[0]["state"] if found else "empty"
    if state not in COMPLETE_STATES:
        return f"not complete: {state}"
    entry = found[0]
    assert grub_files_present(cut.device) == [], f"called {state} but GRUB's files are damaged"
    slot, _fallback = booted_slot(cut.device, tmp)
    version = _versions(image).get(slot_sha256(cut.device, slot, ROOT_SIZE))
    claimed = entry["version"]
    assert version == claimed, f"called complete {claimed}; slot {slot} (boots) holds {version}"
    return f"complete {version} in {slot}, {state}"


def _check_reinstall_final(cut: Disk, image, payloads, tmp: Path) -> None:
    assert grub_files_present(cut.device) == []
    assert table_is_clean(cut.device)
    assert booted_slot(cut.device, tmp) == ("A", "A")
    assert _versions(image).get(slot_sha256(cut.device, "A", ROOT_SIZE)) == "5.0"
    assert storage_hashes(cut.device) == {}  # a reinstall wipes the VMs, as confirmed
    [entry] = detect_json(cut.device, payloads["5.0"])
    assert (entry["state"], entry["version"]) == ("same-version", "5.0"), entry


def _step_key(label: str) -> str:
    """Progress lines of one step share a key: "[write-slot] 30% ..." or "Step 5 of 7: ..."."""
    match = re.match(r"\[([\w-]+)\]|Step (\d+) of \d+", label)
    return (match[1] or match[2]) if match else label


def _pick_cut(rng: random.Random, phases: list[Phase]) -> tuple[str, int]:
    """A step (each equally likely: short ones such as the boot switch get cuts too), then a
    random count of written sectors inside it."""
    steps: list[tuple[str, int, int]] = []
    for phase in phases:
        key = _step_key(phase.label)
        if steps and steps[-1][0] == key:
            steps[-1] = (key, steps[-1][1], phase.end)
        else:
            steps.append((key, phase.start, phase.end))
    key, start, end = rng.choice(steps)
    return key, rng.randrange(start, end)


@pytest.mark.parametrize("seed", range(SEEDS), ids=lambda s: f"{kind_of(s)}-seed{s:02d}")
def test_power_cut(seed, phases, engine45_image, payloads, tmp_path):
    kind = kind_of(seed)
    rng = random.Random(seed)
    _step, threshold = _pick_cut(rng, phases[kind])
    row = [str(seed), kind, f"{threshold * 512 / MiB:.2f} MiB", "", "", ""]
    ROWS.append(tuple(row))
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = {"TMPDIR": str(tmpdir), "ENGINE_INSTALLER_LOG_DIR": str(tmp_path / "logs")}
    cut_image = tmp_path / "cut.img"
    with disk_copy(engine45_image.path, tmp_path) as disk:
        file = _answer_file(tmp_path / "a.toml", disk, payloads, kind)
        start = write_sectors(disk.device)
        out_path = tmp_path / "run.out"
        with open(out_path, "wb") as out:
            proc = popen_installer(["--answers", str(file)], env, out, subprocess.STDOUT)
            try:
                wait_until(
                    lambda: write_sectors(disk.device) - start >= threshold
                    or proc.poll() is not None,
                    300,
                    0.0005,
                )
                signal_tree(proc, signal.SIGSTOP)
                finished = proc.poll() is not None
                sparse_copy(disk.backing, cut_image)  # the disk as the power cut left it
            finally:
                kill_tree(proc)
                clean_leftovers(disk, tmpdir)
    output = [line for line in out_path.read_text(errors="replace").splitlines() if line.strip()]
    row[3] = "finished" if finished else _label(output[-1] if output else "(nothing yet)")
    ROWS[-1] = tuple(row)
    try:
        with attached(cut_image) as cut:
            if kind == "upgrade":
                row[4] = _check_upgrade_cut(cut, engine45_image, payloads, tmp_path)
            else:
                row[4] = _check_reinstall_cut(cut, engine45_image, payloads, tmp_path)
            again = _answer_file(tmp_path / "b.toml", cut, payloads, kind)
            retry = installer("--answers", str(again))
            assert retry.returncode == 0, f"retry failed: {retry.stderr.strip()}"
            if kind == "upgrade":
                _check_upgrade_final(cut, engine45_image, payloads, tmp_path)
            else:
                _check_reinstall_final(cut, engine45_image, payloads, tmp_path)
        row[5] = "ok"
    except AssertionError as err:
        row[5] = "FAIL: " + str(err).splitlines()[0][:120]
        raise
    finally:
        ROWS[-1] = tuple(row)
