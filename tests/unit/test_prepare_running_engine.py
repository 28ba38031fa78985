"""prepare() for an update of the running Engine (the update kit, Plan.running_engine): which
mounts the running system may hold, what the action list may touch, the guide's refusals in
the kit's words, the trust store step and the trial disarm (no root, no disks)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from engine_installer.base.errors import UserError
from engine_installer.install.actions import (
    RUNNING_ENGINE_KINDS,
    DiskAction,
    install_actions,
    upgrade_actions,
    validate_actions,
)
from engine_installer.install.plan import Action
from engine_installer.install.prepare import prepare
from engine_installer.install.refusals import KIT_WORDS, WORDS
from engine_installer.install.runner import _after_failure
from engine_installer.machine.snapshot import PartitionInfo, SlotInfo
from engine_installer.ondisk.vms import VMInfo
from tests.unit.test_prepare import GiB, install, machine, manifest, plan

CERT = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
LABELS = {1: "engine-bios", 2: "engine-esp", 3: "engine-root-a", 4: "engine-root-b",
          5: "engine-storage"}  # fmt: skip


def parts(**mounted: str) -> list[PartitionInfo]:
    """The five Engine partitions of /dev/sda; mounted: label suffix → mount point."""
    result = []
    for number, label in LABELS.items():
        path = f"/dev/sda{number}"
        point = mounted.get(label.removeprefix("engine-").replace("-", "_"), "")
        busy = f"partition {path} is mounted at {point}" if point else ""
        result.append(PartitionInfo(path, number, GiB, label, "ext4", point, busy))
    return result


def running(**mounted: str):
    """A running Engine 4.5 (slot A): / is slot A, /storage the storage partition."""
    mounted = {"root_a": "/", "storage": "/storage"} | mounted
    partitions = parts(**{k: v for k, v in mounted.items() if v})
    busy = next((p.in_use for p in partitions if p.in_use), "")
    return machine(install("upgradeable"), partitions=partitions, in_use=busy)


def kit_plan(**extra):
    return plan(Action.UPGRADE, running_engine=True, lab_override=True, **extra)


def test_running_engine_upgrade_with_its_own_mounts():
    kit = replace(manifest(), trust_certs={"kit-signer.pem": CERT})
    prepared = prepare(kit_plan(), running(), kit)
    assert prepared.ok, prepared.refusals
    assert (prepared.kind, prepared.active_slot, prepared.new_slot) == ("upgrade", "A", "B")
    kinds = [a.kind for a in prepared.actions]
    assert set(kinds) <= RUNNING_ENGINE_KINDS and "bootloader" not in kinds
    assert all(a.target not in ("/dev/sda", "/dev/sda1", "/dev/sda3") for a in prepared.actions)
    # The trust store step comes from the medium, before the switch.
    assert kinds.index("trust") < kinds.index("bootenv")
    trust = prepared.actions[kinds.index("trust")]
    assert (trust.target, trust.params) == ("/dev/sda5", {"names": ["kit-signer.pem"]})
    assert trust.title == "Adding the medium's update-kit certificate to the trust store"
    # The same disk and mounts, for a boot medium: in use.
    boot = prepare(plan(Action.UPGRADE, lab_override=True), running(), kit)
    assert [r.code for r in boot.refusals] == ["in-use"]


def test_a_kit_staged_on_storage_is_no_boot_medium_refusal():
    snapshot = running()
    snapshot.disks[0].is_boot_medium = True  # the kit file lies on the storage partition
    assert prepare(kit_plan(), snapshot, manifest()).ok
    boot = prepare(plan(Action.UPGRADE, lab_override=True), snapshot, manifest())
    assert [r.code for r in boot.refusals] == ["boot-medium"]


@pytest.mark.parametrize(
    ("mounts", "code", "words"),
    [
        ({"root_b": "/mnt/b"}, "slot-mounted", "slot B of /dev/sda (/dev/sda4) is mounted at /mnt"),
        ({"esp": "/boot/efi"}, "in-use", "partition /dev/sda2 is mounted at /boot/efi"),
        ({"root_a": "", "root_b": "/"}, "slot-mounted", "(/dev/sda4) is mounted at / and"),
    ],
    ids=["inactive slot mounted", "ESP mounted", "running from the slot to write"],
)  # fmt: skip
def test_what_the_running_system_must_not_hold(mounts, code, words):
    prepared = prepare(kit_plan(), running(**mounts), manifest())
    assert [r.code for r in prepared.refusals] == [code]
    assert words in prepared.refusals[0].kit_hint()


def test_the_whole_disk_in_use_or_a_held_partition_is_refused():
    snapshot = running()
    snapshot.disks[0].in_use = "/dev/sda is held by dm-0 (LVM, RAID or encryption)"
    assert [r.code for r in prepare(kit_plan(), snapshot, manifest()).refusals] == ["in-use"]
    snapshot = running()
    snapshot.disks[0].partitions[3].in_use = "partition /dev/sda4 is active swap"
    refusals = prepare(kit_plan(), snapshot, manifest()).refusals
    assert [r.code for r in refusals] == ["in-use"] and "active swap" in refusals[0].kit_hint()


@pytest.mark.parametrize("action", [Action.INSTALL, Action.REINSTALL, Action.REPAIR])
def test_a_kit_only_upgrades(action):
    prepared = prepare(plan(action, running_engine=True, lab_override=True), running(), manifest())
    assert [r.code for r in prepared.refusals] == ["running-action"]
    assert not prepared.actions
    assert prepared.refusals[0].kit_hint().endswith("from a boot medium")


def test_auto_on_a_blank_disk_is_no_install_for_a_kit():
    prepared = prepare(plan(running_engine=True, lab_override=True), machine(), manifest())
    assert [r.code for r in prepared.refusals] == ["no-engine"]
    assert "name the Engine disk with --disk" in prepared.refusals[0].kit_hint()


def test_an_older_kit_is_refused_naming_the_vms_even_when_downgrades_are_allowed():
    vms = [VMInfo("render", "custom", "5.1", "5.1.0"), VMInfo("web", "shared", "4.5", "4.5.0")]
    snapshot = running()
    snapshot.installs = [install("newer-than-media", "5.1", vms)]
    prepared = prepare(kit_plan(allow_downgrade=True), snapshot, manifest("5.0"))
    assert [r.code for r in prepared.refusals] == ["downgrade"]
    hint = prepared.refusals[0].kit_hint()
    assert "the kit holds Engine 5.0, older than the running Engine 5.1" in hint
    assert "render (custom, for 5.1)" in hint and "web" not in hint
    assert "allow_downgrade" not in hint and "Tick" not in hint


def test_kit_words_exist_for_every_code_and_never_name_answer_file_keys():
    assert set(KIT_WORDS) <= set(WORDS)
    for text in KIT_WORDS.values():
        assert "[install]" not in text and "action =" not in text


def test_a_pending_trial_of_the_slot_to_write_is_cancelled_first():
    snapshot = running()
    snapshot.installs = [install("same-version", "5.0", trial_slot="B", tries=3)]
    snapshot.installs[0].slots["B"] = SlotInfo("5.0", "50")
    prepared = prepare(kit_plan(), snapshot, manifest("5.0"))
    assert prepared.ok, prepared.refusals
    first = prepared.actions[0]
    assert (first.kind, first.params) == ("bootenv", {"active": "A", "trial": "", "tries": 0})
    assert first.title == "Cancelling the pending trial boot of slot B before it is rewritten"
    assert [a.kind for a in prepared.actions[1:3]] == ["write-slot", "verify-slot"]
    # Cut off while slot B is rewritten: the trial was cancelled, nothing was switched.
    assert _after_failure(prepared, 2).startswith("nothing was switched: Engine 5.0 still boots")
    switch = [a.kind for a in prepared.actions].index("bootenv", 1)
    assert "already switched" in _after_failure(prepared, switch + 2)


def test_validation_keeps_a_kit_off_the_boot_loader_and_cancels_only_before_writing():
    actions = upgrade_actions("/dev/sda", manifest(), "A", "us", [])
    validate_actions(actions, "upgrade", "/dev/sda", 64 * GiB, "A", running_engine=True)
    loader = [*actions, DiskAction("bootloader", "/dev/sda", "Installing the boot loader")]
    with pytest.raises(UserError, match="running Engine would bootloader"):
        validate_actions(loader, "upgrade", "/dev/sda", 64 * GiB, "A", running_engine=True)
    validate_actions(loader, "upgrade", "/dev/sda", 64 * GiB, "A")  # a boot medium may
    late = [*actions[:2], DiskAction("bootenv", "/dev/sda2", "x", params={"trial": ""})]
    with pytest.raises(UserError, match="cancelled only before the slot write"):
        validate_actions(late, "upgrade", "/dev/sda", 64 * GiB, "A")


def test_install_from_a_signed_medium_fills_the_trust_store_before_the_marker():
    actions = install_actions("/dev/sda", 8 * GiB, manifest(), "us", [], trust=["a.pem", "b.pem"])
    kinds = [a.kind for a in actions]
    assert kinds[-4:] == ["trust", "config", "marker", "save-report"]
    assert actions[-4].title == "Adding the medium's 2 update-kit certificates to the trust store"
    validate_actions(actions, "install", "/dev/sda", 8 * GiB)
    # A medium without certificates: no step (and no empty trust store).
    assert "trust" not in [
        a.kind for a in install_actions("/dev/sda", 8 * GiB, manifest(), "us", [])
    ]
