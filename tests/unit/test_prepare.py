"""prepare() and what it builds on, as pure logic (no root, no disks): the layout, the action
lists, the decision table, refusals and their words, the upgrade report, the marker copies."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from engine_installer.base.errors import RefusedError, UserError
from engine_installer.install.actions import (
    DiskAction,
    format_actions,
    install_actions,
    step_lines,
    upgrade_actions,
    validate_actions,
)
from engine_installer.install.plan import Action, Plan
from engine_installer.install.prepare import decide, prepare, target_refusals
from engine_installer.install.refusals import WORDS, Refusal
from engine_installer.install.report import UpgradeReport, needs_pv_upgrade, will_not_run
from engine_installer.machine.snapshot import (
    DetectedInstall,
    DiskInfo,
    MachineSnapshot,
    SlotInfo,
)
from engine_installer.ondisk.layout import MiB, compute_layout, minimum_disk_size
from engine_installer.ondisk.marker import marker_bytes, new_marker, parse_marker, read_markers
from engine_installer.ondisk.payload import Artifact, Manifest
from engine_installer.ondisk.vms import VMInfo, parse_vm_json

GiB = 1024 * MiB
# A machine the QEMU lab profile matches, so the hardware check passes.
QEMU_DMI = {"sys_vendor": "QEMU", "product_name": "Standard PC (Q35 + ICH9, 2009)"}


def manifest(version: str = "5.0", slot_size: int = 512 * MiB) -> Manifest:
    root = Artifact("root", Path("/p/root.img"), "0" * 64, 100 * MiB, 0, "engine/root.img")
    return Manifest(
        "Engine", version, "50", slot_size, "", {"root": root}, Path("/p"), f"{version}.0"
    )


VMS = [
    VMInfo("shared-old", "shared", "4.5", "4.5.2"),
    VMInfo("custom-old", "custom", "4.5", "4.5.0"),
    VMInfo("local-current", "local", "5.0", "5.0.0"),  # drivers already match the medium
    VMInfo("local-unknown", "local", "4.5", ""),
    VMInfo("local-newer", "local", "5.1", "5.1.0"),  # published for a newer Engine
]


def install(state: str, version: str = "4.5", vms=None, **extra) -> DetectedInstall:
    return DetectedInstall(
        disk="/dev/sda",
        state=state,
        version=version,
        build="45",
        active_slot="A",
        vms=list(vms or []),
        slots={"A": SlotInfo(version, "45")},
        partitions={"engine-root-b": [4, 0, 512 * MiB]},
        **extra,
    )


def machine(inst: DetectedInstall | None = None, **disk) -> MachineSnapshot:
    base = dict(path="/dev/sda", size=64 * GiB, by_id=["/dev/disk/by-id/ata-DISK"])
    return MachineSnapshot(
        dmi=dict(QEMU_DMI),
        cpu_flags=["vmx", "ept"],
        memory_bytes=8 * GiB,
        acpi_dmar=True,
        disks=[DiskInfo(**(base | disk))],
        installs=[inst] if inst else [],
    )


def plan(action: Action = Action.AUTO, **extra) -> Plan:
    return Plan(action=action, target="/dev/sda", eula_accepted=True, **extra)


def test_layout_fills_disk_aligned():
    specs = compute_layout(8 * GiB, 512 * MiB)
    assert [s.number for s in specs] == [1, 2, 3, 4, 5]
    for a, b in zip(specs, specs[1:], strict=False):
        assert a.start + a.size == b.start and b.start % MiB == 0
    assert specs[-1].start + specs[-1].size <= 8 * GiB - MiB
    assert minimum_disk_size(512 * MiB) > 2 * 512 * MiB


def test_install_actions_order_and_validation():
    actions = install_actions("/dev/sda", 8 * GiB, manifest(), "de", ["quiet"], "SER1")
    kinds = [a.kind for a in actions]
    assert kinds[0] == "partition" and kinds[-2:] == ["marker", "save-report"]
    assert kinds.index("verify-slot") == kinds.index("write-slot") + 1
    assert actions[2].params == {"mode": "new", "slot": "A", "disk_serial": "SER1"}
    validate_actions(actions, "install", "/dev/sda", 8 * GiB)
    text = format_actions(actions)
    assert "/dev/sda3" in text and "[erases]" in text
    assert text.splitlines()[0] == "Step 1 of 12: Partitioning /dev/sda [erases]"
    with pytest.raises(UserError, match="marker must be written last"):
        validate_actions(actions[:-2] + actions[-1:], "install", "/dev/sda", 8 * GiB)


def test_upgrade_actions_keep_active_slot_and_switch_after_verify():
    actions = upgrade_actions("/dev/nvme0n1", manifest(), "A", "us", [])
    assert actions[0].target == "/dev/nvme0n1p4"  # inactive slot B
    assert actions[0].title == "Writing Engine 5.0 (build 50) into slot B"
    validate_actions(actions, "upgrade", "/dev/nvme0n1", 8 * GiB, active_slot="A")
    bad = [DiskAction("write-slot", "/dev/nvme0n1p3", "x", params={"slot": "A"}, wipe=True)]
    with pytest.raises(UserError, match="would write /dev/nvme0n1p3"):
        validate_actions(bad, "upgrade", "/dev/nvme0n1", 8 * GiB, active_slot="A")
    early = [a for a in actions if a.kind != "verify-slot"]
    with pytest.raises(UserError, match="before the slot is verified"):
        validate_actions(early, "upgrade", "/dev/nvme0n1", 8 * GiB, active_slot="A")
    with pytest.raises(UserError, match="never repartitions"):
        validate_actions(
            [DiskAction("format", "/dev/nvme0n1p2", "x", params={"fstype": "vfat"})],
            "upgrade",
            "/dev/nvme0n1",
            8 * GiB,
            active_slot="A",
        )


@pytest.mark.parametrize(
    ("action", "state", "kind", "code"),
    [
        (Action.AUTO, None, "install", ""),
        (Action.AUTO, "upgradeable", "upgrade", ""),
        (Action.AUTO, "same-version", "upgrade", ""),
        (Action.AUTO, "newer-than-media", "", "downgrade"),
        (Action.AUTO, "incomplete", "", "damaged"),
        (Action.AUTO, "damaged", "", "damaged"),
        (Action.AUTO, "repairable", "", "needs-repair"),
        (Action.AUTO, "foreign", "", "not-blank"),
        (Action.INSTALL, None, "install", ""),
        (Action.INSTALL, "foreign", "install", ""),
        (Action.INSTALL, "upgradeable", "", "holds-engine"),
        (Action.INSTALL, "damaged", "", "holds-engine"),
        (Action.UPGRADE, "upgradeable", "upgrade", ""),
        (Action.UPGRADE, None, "", "no-engine"),
        (Action.UPGRADE, "foreign", "", "no-engine"),
        (Action.UPGRADE, "repairable", "", "needs-repair"),
        (Action.REINSTALL, "upgradeable", "reinstall", ""),
        (Action.REINSTALL, "foreign", "reinstall", ""),
        (Action.REPAIR, "repairable", "repair", ""),
        (Action.REPAIR, "upgradeable", "", "nothing-to-repair"),
        (Action.REPAIR, "damaged", "", "not-repairable"),
        (Action.REPAIR, None, "", "no-engine"),
    ],
)
def test_decide(action, state, kind, code):
    found = install(state, reason="why") if state else None
    decided, refusals = decide(plan(action), found, manifest())
    assert decided == kind
    assert [r.code for r in refusals] == ([code] if code else [])


def test_downgrade_needs_allow_and_is_called_a_downgrade():
    newer = install("newer-than-media", version="6.0", vms=VMS)
    refused = prepare(plan(), machine(newer), manifest())
    assert [r.code for r in refused.refusals] == ["downgrade"]
    assert "local-newer" in refused.refusals[0].hint()  # published for 5.1, newer than 5.0
    allowed = prepare(plan(allow_downgrade=True), machine(newer), manifest())
    assert allowed.ok and allowed.kind == "downgrade"
    assert allowed.report.action == "downgrade"
    assert [vm.name for vm in allowed.report.vms_that_will_not_run] == ["local-newer"]
    assert allowed.actions[-1].title == "Saving the downgrade report and the log on the disk"


def test_target_refusals_and_words():
    m = manifest()
    assert target_refusals(DiskInfo("/dev/sdb", 64 * GiB), m) == []
    cases = {
        "too-small": DiskInfo("/dev/sdb", 1 * GiB),
        "read-only": DiskInfo("/dev/sdb", 64 * GiB, read_only=True),
        "boot-medium": DiskInfo("/dev/sdb", 64 * GiB, is_boot_medium=True),
        "in-use": DiskInfo("/dev/sdb", 64 * GiB, in_use="partition /dev/sdb1 is mounted at /"),
    }
    for code, disk in cases.items():
        (refusal,) = target_refusals(disk, m)
        assert refusal.code == code
        # Screens get a sentence, answer files a hint; neither is answer-file syntax on screen.
        assert "action =" not in refusal.sentence() and refusal.sentence().endswith(".")
        assert "/dev/sdb" in refusal.hint()


def test_every_refusal_has_both_wordings():
    for code, (sentence, hint) in WORDS.items():
        assert sentence and hint, code
        assert "action =" not in sentence and "[install]" not in sentence, code
    assert isinstance(
        Refusal("downgrade", "/d", {"version": "6", "media": "5", "vms": "x"}).error(), RefusedError
    )
    assert not isinstance(Refusal("eula").error(), RefusedError)


def test_prepare_refuses_busy_disk_and_failed_hardware():
    busy = prepare(plan(), machine(in_use="partition /dev/sda1 is mounted at /mnt"), manifest())
    assert [r.code for r in busy.refusals] == ["in-use"]
    bare = machine()
    bare.dmi, bare.cpu_flags = {}, []  # no VT-x: the hardware check fails
    failed = prepare(plan(), bare, manifest())
    assert "hardware" in [r.code for r in failed.refusals]
    overridden = prepare(plan(lab_override=True), bare, manifest())
    assert overridden.ok


def test_prepare_by_id_target_and_unknown_disk():
    by_id = prepare(replace(plan(), target="/dev/disk/by-id/ata-DISK"), machine(), manifest())
    assert by_id.ok and by_id.disk.path == "/dev/sda"
    assert by_id.actions[0].target == "/dev/sda"
    missing = prepare(replace(plan(), target="/dev/sdz"), machine(), manifest())
    assert [r.code for r in missing.refusals] == ["unknown-disk"]
    unaccepted = prepare(replace(plan(), eula_accepted=False), machine(), manifest())
    assert "eula" in [r.code for r in unaccepted.refusals]


def test_upgrade_applies_keyboard_and_kernel_args_to_the_new_slot():
    prepared = prepare(
        plan(keyboard="de", kernel_args=["quiet"]), machine(install("upgradeable")), manifest()
    )
    assert prepared.ok and prepared.kind == "upgrade" and prepared.new_slot == "B"
    options = next(a for a in prepared.actions if a.kind == "slot-options")
    assert options.params == {"slot": "B", "kernel_args": ["quiet"], "keyboard": "de"}
    config = next(a for a in prepared.actions if a.kind == "config")
    assert config.params["keyboard"] == "de"
    # The boot switch comes after the new slot's options are written.
    kinds = [a.kind for a in prepared.actions]
    assert kinds.index("slot-options") < kinds.index("bootenv")


def test_profile_quirks_reach_the_actions_for_answer_files_and_screens_alike():
    # A ThinkPad T480: its profile adds i915.enable_psr=0, before what the plan asks for.
    t480 = machine(install("upgradeable"))
    t480.dmi = {
        "sys_vendor": "LENOVO",
        "product_name": "20L5CTO1WW",
        "product_version": "ThinkPad T480",
    }
    prepared = prepare(plan(kernel_args=["quiet"]), t480, manifest())
    assert prepared.hardware.profile_id.startswith("lenovo-thinkpad-t480")
    assert prepared.kernel_args == ["i915.enable_psr=0", "quiet"]
    options = next(a for a in prepared.actions if a.kind == "slot-options")
    assert options.params["kernel_args"] == ["i915.enable_psr=0", "quiet"]


def test_repair_actions_restore_only_what_is_damaged():
    damaged = install(
        "repairable",
        repairs=["gpt", "bios-boot"],
        problems=["the backup GPT header is damaged", "the BIOS boot code in sector 0 is missing"],
    )
    prepared = prepare(plan(Action.REPAIR), machine(damaged), manifest())
    assert prepared.ok and prepared.kind == "repair"
    assert [a.kind for a in prepared.actions] == ["repair-table", "bios-boot", "save-report"]
    assert not any(a.wipe for a in prepared.actions)
    auto = prepare(plan(), machine(damaged), manifest())
    assert [r.code for r in auto.refusals] == ["needs-repair"]
    assert 'action = "repair"' in auto.refusals[0].hint()


def test_report_lists_exactly_the_right_vms():
    upgrade = prepare(plan(), machine(install("upgradeable", vms=VMS)), manifest())
    report = upgrade.report
    # Shared ones are updated by Engine; local-current's drivers match the medium's;
    # local-newer will not run... on 5.0 it is published for 5.1: it will not run and is not
    # listed as needing a PV upgrade.
    assert [vm.name for vm in report.vms_needing_pv_upgrade] == ["custom-old", "local-unknown"]
    assert [vm.name for vm in will_not_run(VMS, "5.0")] == ["local-newer"]
    data = report.to_json()
    assert data["vms_needing_pv_upgrade"] == ["custom-old", "local-unknown"]
    assert data["from_version"] == "4.5" and data["to_version"] == "5.0"
    again = UpgradeReport.from_json(json.loads(json.dumps(data)))
    assert again.vms_needing_pv_upgrade == report.vms_needing_pv_upgrade
    # Against an older medium, a custom VM at 4.5.0 still needs drivers 4.5.1; on 4.5 the
    # VMs published for 5.0 and 5.1 will not run at all, so they are not listed.
    names = [vm.name for vm in needs_pv_upgrade(VMS, "4.5.1", "4.5")]
    assert names == ["custom-old", "local-unknown"]


def test_step_lines_are_numbered_with_a_total():
    prepared = prepare(plan(), machine(install("upgradeable")), manifest())
    lines = step_lines(prepared.actions)
    assert lines[0] == f"Step 1 of {len(lines)}: Writing Engine 5.0 (build 50) into slot B"
    assert all(f"of {len(lines)}: " in line for line in lines)


def test_vm_json():
    vm = parse_vm_json(json.dumps({"kind": "local", "published_for": "5.0"}), "fallback")
    assert (vm.name, vm.kind) == ("fallback", "local")
    for bad in ("{", '{"kind": "other", "published_for": "5.0"}', '{"kind": "local"}', "[]"):
        with pytest.raises(ValueError):
            parse_vm_json(bad)


def test_marker_copies_newest_whole_one_wins():
    data = new_marker(manifest(), "A", "SER", "2026-01-01T00:00:00+00:00")
    first = marker_bytes(data, 1)
    assert parse_marker(first.decode())["seq"] == 1
    second = marker_bytes(dict(data, complete=True), 2)
    files = {"engine/install.json": first, "engine/install.2.json": second}
    copies = read_markers(files.get)
    assert copies.marker["complete"] is True and copies.path == "engine/install.2.json"
    assert copies.next_path == "engine/install.json"
    # A torn write of the newer copy: the older whole one is used, and is not overwritten.
    files["engine/install.2.json"] = second[:40] + b"X" + second[41:]
    copies = read_markers(files.get)
    assert copies.marker["complete"] is False and copies.problems
    assert copies.next_path == "engine/install.2.json"
    # Markers without seq/checksum (written by earlier installers) still read.
    legacy = {"engine/install.json": json.dumps(data).encode()}
    assert read_markers(legacy.get).marker["product"] == "Engine"
    with pytest.raises(ValueError, match="lacks 'slot'"):
        parse_marker(
            json.dumps({"product": "Engine", "version": "5.0", "build": "1", "complete": True})
        )
