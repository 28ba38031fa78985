"""The update status file and its reconciliation with the disk (pure; no root)."""

from __future__ import annotations

import json

import pytest

from engine_installer.machine.snapshot import DetectedInstall, SlotInfo
from engine_installer.ondisk.layout import UPDATE_STATUS_PATH
from engine_installer.update.status import (
    BLANK,
    FAILED,
    INSTALLED,
    PENDING,
    SIGNALLED,
    STATES,
    Engine,
    Kit,
    UpdateStatus,
    explain,
    read_status,
    reconcile,
    write_status,
)

KIT = Kit("engine/updates/engine-5.0.iso", "5.0", "50", "CN=Engine kits")


def disk(active="A", trial="", tries=0, b=("5.0", "50")) -> DetectedInstall:
    """Engine 4.5 in slot A, the kit's 5.0 in slot B, the boot environment as given."""
    slots = {"A": SlotInfo("4.5", "45"), "B": SlotInfo(*b)}
    return DetectedInstall(
        "/dev/sda", "upgradeable", "4.5", "45", active, slots=slots, trial_slot=trial, tries=tries
    )


def status(word: str, step: str = "") -> UpdateStatus:
    return UpdateStatus(word, kit=KIT, engine=Engine("4.5", "45", "A"), target_slot="B", step=step)


def test_the_words_are_the_guides():
    assert STATES == ("", "Pending", "Signalled", "Installed (Reboot Required)", "Failed")


def test_installed_waits_while_the_trial_is_armed():
    current = status(INSTALLED)
    assert reconcile(current, disk(trial="B", tries=3)) == current
    text = explain(current, disk(trial="B", tries=3))
    assert text == (
        "Restart to start Engine 5.0 (build 50) from slot B (a trial boot); Engine 4.5 "
        "(build 45) in slot A stays the fallback."
    )
    on_trial = explain(current, disk(trial="B", tries=2))
    assert "on its trial boot (2 left)" in on_trial


def test_new_slot_booted_and_marked_good_is_blank_with_the_running_version():
    settled = reconcile(status(INSTALLED), disk(active="B"))
    assert settled.status == BLANK and settled.engine == Engine("5.0", "50", "B")
    assert "completed" in settled.times
    assert explain(settled, disk(active="B")) == (
        "No update in progress; Engine 5.0 (build 50) in slot B boots."
    )


def test_trial_used_up_and_grub_fell_back_is_failed():
    settled = reconcile(status(INSTALLED), disk(active="A"))
    assert settled.status == FAILED
    assert settled.reason == "Engine 5.0 did not start; Engine 4.5 is running again"
    assert settled.engine == Engine("4.5", "45", "A") and "failed" in settled.times


def test_an_interrupted_apply_says_what_the_disk_holds():
    cut = reconcile(
        status(SIGNALLED, "Step 1 of 9: Writing Engine 5.0 (build 50) into slot B"), disk()
    )
    assert cut.status == FAILED
    assert cut.reason == (
        "the apply of Engine 5.0 was interrupted during step 1 of 9: Writing Engine 5.0 "
        "(build 50) into slot B (power cut or stopped); nothing was switched: Engine 4.5 still "
        "boots from slot A: run engine-update apply again"
    )
    after = reconcile(status(SIGNALLED, "Step 7 of 9: x"), disk(trial="B", tries=3))
    assert "slot B holds Engine 5.0 and is armed for a trial boot" in after.reason
    # Cut after the switch, then the restart booted 5.0, which marked itself good: done.
    assert reconcile(status(SIGNALLED), disk(active="B")).status == BLANK


@pytest.mark.parametrize("word", [BLANK, PENDING])
def test_blank_and_pending_are_not_derived_from_the_disk(word):
    assert reconcile(status(word), disk(active="B")) == status(word)


def test_a_failure_before_a_good_boot_stays_failed_and_one_after_it_clears():
    failed = status(FAILED)
    failed.reason = "x"
    assert reconcile(failed, disk()) == failed
    assert reconcile(failed, disk(active="B")).status == BLANK
    # Slot B active but holding another build than the kit: not this kit's success.
    assert reconcile(status(INSTALLED), disk(active="B", b=("5.0", "49"))).status == INSTALLED


def test_the_file_round_trips_and_is_replaced_atomically(tmp_path):
    current = status(SIGNALLED, "Step 2 of 9: Verifying slot B").moved(SIGNALLED, started=True)
    write_status(tmp_path, current)
    assert read_status(tmp_path) == (current, "")
    data = json.loads((tmp_path / UPDATE_STATUS_PATH).read_text())
    assert (data["status"], data["kit"]["version"], data["step"]) == (
        "Signalled",
        "5.0",
        "Step 2 of 9: Verifying slot B",
    )
    assert [p.name for p in (tmp_path / "engine").iterdir()] == ["update-status.json"]


def test_a_missing_file_is_blank_and_a_garbled_one_is_reported(tmp_path):
    assert read_status(tmp_path) == (UpdateStatus(), "")
    path = tmp_path / UPDATE_STATUS_PATH
    path.parent.mkdir(parents=True)
    path.write_text('{"status": "Done"}')
    found, note = read_status(tmp_path)
    assert found == UpdateStatus() and "unknown status 'Done'" in note


def test_moving_keeps_the_kit_and_clears_the_step():
    moved = status(SIGNALLED, "Step 9 of 9: x").moved(INSTALLED, installed=True)
    assert (moved.status, moved.kit, moved.step) == (INSTALLED, KIT, "")
    assert moved.times["installed"] == moved.times["updated"]
