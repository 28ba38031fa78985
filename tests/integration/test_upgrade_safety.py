"""An upgrade that fails mid-write leaves the old Engine booting and its data intact."""

from __future__ import annotations

import shutil

import pytest
from conftest import add_vms, check_disk_tools, grubenv, marker, slot_release, tree_hashes

from engine_installer.detect import detect_installs
from engine_installer.disks.runner import run_plan
from engine_installer.errors import UserError
from engine_installer.payload import load_manifest
from engine_installer.plan import Plan
from engine_installer.probe import probe_disk


def test_source_failing_during_upgrade_keeps_old_slot(make_loop, payloads, tmp_path):
    disk = make_loop()
    run_plan(Plan(target=disk, eula_accepted=True), load_manifest(payloads["4.5"]))
    add_vms(disk, {"desk": ("local", "4.5")})
    before = tree_hashes(disk)
    media = tmp_path / "engine"
    shutil.copytree(payloads["5.0"], media)
    manifest = load_manifest(media)

    def flaky_medium(event):
        # The medium goes bad after the check, as the slot write starts (a real file change,
        # as a failing USB stick would return): the write pass must notice. At this event
        # the reader holds at most 5 of the 6 blocks (4 MiB each), so the tail is unread yet.
        if event.phase == "write-slot" and event.total > 1 and event.done == 0:
            with open(manifest.root_image.path, "r+b") as handle:
                handle.seek(manifest.root_image.size - 4096)
                handle.write(b"\xff" * 16)

    with pytest.raises(UserError, match="changed or read wrongly"):
        run_plan(Plan(target=disk, eula_accepted=True), manifest, flaky_medium)
    env = grubenv(disk, tmp_path)
    assert env["engine_active"] == "A" and env.get("engine_trial", "") == ""
    mark = marker(disk)
    assert (mark["version"], mark["slot"], list(mark["slots"])) == ("4.5", "A", ["A"])
    assert slot_release(disk, "A") == "ENGINE 4.5 build 45"
    assert tree_hashes(disk) == before
    check_disk_tools(disk)
    [found] = detect_installs([probe_disk(disk)], load_manifest(payloads["5.0"]))
    assert (found.state, found.version, found.active_slot) == ("upgradeable", "4.5", "A")
