"""An upgrade that fails mid-write leaves the old Engine booting and its data intact."""

from __future__ import annotations

import shutil

import pytest
from diskhelpers import add_vms, check_disk_tools, grubenv, marker, slot_release, tree_hashes

from engine_installer.base.errors import UserError
from engine_installer.install.plan import Plan
from engine_installer.install.runner import run_plan
from engine_installer.machine.detect import detect_installs
from engine_installer.machine.probe import probe_disk
from engine_installer.ondisk.payload import load_manifest


def test_source_failing_during_upgrade_keeps_old_slot(make_loop, payloads, tmp_path):
    disk = make_loop()
    run_plan(
        Plan(target=disk, eula_accepted=True, lab_override=True), load_manifest(payloads["4.5"])
    )
    add_vms(disk, {"desk": ("local", "4.5")})
    before = tree_hashes(disk)
    media = tmp_path / "engine"
    shutil.copytree(payloads["5.0"], media)
    manifest = load_manifest(media)

    def flaky_medium(event):
        # The medium goes bad after the check, as the slot write starts (a real file change,
        # as a failing USB stick would return): the write pass's hash must notice. The first
        # write-slot event comes before the copy reads anything.
        if event.phase == "write-slot" and event.total > 1 and event.done == 0:
            with open(manifest.root_image.path, "r+b") as handle:
                handle.seek(manifest.root_image.size - 4096)
                handle.write(b"\xff" * 16)

    with pytest.raises(UserError, match="changed or read wrongly") as caught:
        plan = Plan(target=disk, eula_accepted=True, lab_override=True)
        run_plan(plan, manifest, flaky_medium)
    assert "nothing was switched: Engine 4.5 still boots from slot A" in str(caught.value)
    env = grubenv(disk, tmp_path)
    assert env["engine_active"] == "A" and env.get("engine_trial", "") == ""
    mark = marker(disk)
    assert (mark["version"], mark["slot"], list(mark["slots"])) == ("4.5", "A", ["A"])
    assert "VERSION=4.5" in slot_release(disk, "A")
    assert tree_hashes(disk) == before
    check_disk_tools(disk)
    [found] = detect_installs([probe_disk(disk)], load_manifest(payloads["5.0"]))
    assert (found.state, found.version, found.active_slot) == ("upgradeable", "4.5", "A")


def test_install_killed_midway_is_incomplete(make_loop, payloads, tmp_path):
    """SIGKILL the real console script as the boot loader step starts (~0.5 s or more)."""
    import json
    import signal
    import subprocess

    from diskhelpers import VENV_BIN, engine_installer, write_answers

    disk = make_loop(720 * 1024 * 1024)
    answers = write_answers(tmp_path / "a.toml", disk, payloads["4.5"])
    proc = subprocess.Popen(
        [str(VENV_BIN / "engine-installer"), "--answers", str(answers)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        for line in proc.stdout:
            if "Installing the boot loader" in line:
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    mark = marker(disk)
    assert (mark["version"], mark["complete"]) == ("4.5", False)
    out = engine_installer("--source", str(payloads["4.5"]), "detect", "--json", "--disk", disk)
    [found] = json.loads(out.stdout)
    assert found["state"] == "incomplete" and "never finished" in found["reason"]


def test_downgrade_only_when_allowed(make_loop, payloads, tmp_path):
    from diskhelpers import engine_installer, write_answers

    disk = make_loop(720 * 1024 * 1024)
    run_plan(
        Plan(target=disk, eula_accepted=True, lab_override=True), load_manifest(payloads["5.1"])
    )
    add_vms(disk, {"render": ("custom", "5.1"), "web": ("shared", "4.5")})
    answers = write_answers(tmp_path / "a.toml", disk, payloads["5.0"], allow_downgrade=True)
    proc = engine_installer("--answers", str(answers))
    assert proc.returncode == 0, proc.stderr
    assert f"Engine 5.0 build 50 downgraded on {disk}, slot B (was 5.1" in proc.stdout
    assert "will not run on 5.0:\n  render (custom, published for 5.1)" in proc.stdout
    assert "upgrade" not in proc.stdout.lower().replace("pv-driver upgrade", "")
    env = grubenv(disk, tmp_path)
    assert (env["engine_active"], env["engine_trial"]) == ("A", "B")
    assert "VERSION=5.1" in slot_release(disk, "A")  # the newer Engine stays as fallback
