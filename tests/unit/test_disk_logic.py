"""Plan, answer file, layout, disk actions, decisions and VM rules: pure logic, no root."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine_installer.answers import plan_from_answers
from engine_installer.base.errors import RefusedError, UserError
from engine_installer.install.actions import (
    DiskAction,
    format_actions,
    install_actions,
    upgrade_actions,
    validate_actions,
)
from engine_installer.install.plan import Action, Plan
from engine_installer.install.prepare import check_target, decide
from engine_installer.machine.detect import Inspection
from engine_installer.machine.snapshot import DetectedInstall, DiskInfo
from engine_installer.ondisk.layout import MiB, compute_layout, minimum_disk_size
from engine_installer.ondisk.marker import new_marker, parse_marker
from engine_installer.ondisk.payload import Artifact, Manifest
from engine_installer.ondisk.vms import (
    VMInfo,
    blocked_by_downgrade,
    needs_pv_upgrade,
    parse_vm_json,
)

GiB = 1024 * MiB


def manifest(version: str = "5.0", slot_size: int = 512 * MiB) -> Manifest:
    root = Artifact("root", Path("/p/root.img"), "0" * 64, 100 * MiB)
    return Manifest("Engine", version, "50", slot_size, "", {"root": root}, Path("/p"))


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
    assert kinds[0] == "partition" and kinds[-1] == "marker"
    assert kinds.index("verify-slot") == kinds.index("write-slot") + 1
    assert actions[2].params == {"mode": "new", "slot": "A", "disk_serial": "SER1"}
    validate_actions(actions, "install", "/dev/sda", 8 * GiB)
    text = format_actions(actions)
    assert "/dev/sda3" in text and "[wipe]" in text and text.count("\n") == len(actions) - 1
    # A plan whose marker is not last is refused before anything runs.
    with pytest.raises(UserError, match="marker must be written last"):
        validate_actions(actions[:-1], "install", "/dev/sda", 8 * GiB)


def test_upgrade_actions_keep_active_slot_and_storage():
    actions = upgrade_actions("/dev/nvme0n1", manifest(), "A")
    assert actions[0].target == "/dev/nvme0n1p4"  # inactive slot B
    validate_actions(actions, "upgrade", "/dev/nvme0n1", 8 * GiB, active_slot="A")
    bad = [DiskAction("write-slot", "/dev/nvme0n1p3", "x", {"slot": "A"}, wipe=True)]
    with pytest.raises(UserError, match="would write /dev/nvme0n1p3"):
        validate_actions(bad, "upgrade", "/dev/nvme0n1", 8 * GiB, active_slot="A")
    early = [a for a in actions if a.kind != "verify-slot"]
    with pytest.raises(UserError, match="before the slot is verified"):
        validate_actions(early, "upgrade", "/dev/nvme0n1", 8 * GiB, active_slot="A")
    with pytest.raises(UserError, match="never repartitions"):
        validate_actions(
            [DiskAction("format", "/dev/nvme0n1p2", "x", {"fstype": "vfat"})],
            "upgrade",
            "/dev/nvme0n1",
            8 * GiB,
            active_slot="A",
        )


def _inspection(state: str, version: str = "4.5", vms=None) -> Inspection:
    found = DetectedInstall(disk="/dev/sda", state=state, version=version, vms=vms or [])
    return Inspection(install=found if state else None)


@pytest.mark.parametrize(
    ("action", "state", "expected"),
    [
        (Action.AUTO, "", "install"),
        (Action.AUTO, "upgradeable", "upgrade"),
        (Action.AUTO, "same-version", "upgrade"),
        (Action.AUTO, "incomplete", "install"),
        (Action.AUTO, "foreign", "install"),
        (Action.REINSTALL, "upgradeable", "reinstall"),
        (Action.INSTALL, "", "install"),
        (Action.UPGRADE, "upgradeable", "upgrade"),
    ],
)
def test_decide(action, state, expected):
    plan = Plan(action=action, target="/dev/sda", eula_accepted=True)
    assert decide(plan, _inspection(state), manifest()) == expected


@pytest.mark.parametrize(
    ("action", "state", "error", "words"),
    [
        (Action.AUTO, "damaged", RefusedError, "reinstall"),
        (Action.INSTALL, "upgradeable", RefusedError, "already holds Engine 4.5"),
        (Action.UPGRADE, "foreign", UserError, "no upgradeable Engine"),
        (Action.UPGRADE, "", UserError, "empty disk"),
    ],
)
def test_decide_refuses(action, state, error, words):
    plan = Plan(action=action, target="/dev/sda", eula_accepted=True)
    with pytest.raises(error, match=words):
        decide(plan, _inspection(state), manifest())


def test_check_target_refusals():
    ok = DiskInfo(path="/dev/sdb", size=64 * GiB)
    check_target(ok, manifest())
    cases = [
        (DiskInfo(path="/dev/sdb", size=1 * GiB), "too small"),
        (DiskInfo(path="/dev/sdb", size=64 * GiB, read_only=True), "read-only"),
        (DiskInfo(path="/dev/sdb", size=64 * GiB, is_boot_medium=True), "boot medium"),
        (
            DiskInfo(path="/dev/sdb", size=64 * GiB, in_use="partition /dev/sdb1 is mounted at /"),
            "in use",
        ),
    ]
    for disk, words in cases:
        with pytest.raises(UserError, match=words):
            check_target(disk, manifest())


def test_vm_rules():
    vms = [
        VMInfo("web", "shared", "4.5"),
        VMInfo("build", "custom", "5.0"),
        VMInfo("desk", "local", "5.1"),
    ]
    assert [v.name for v in needs_pv_upgrade(vms)] == ["build", "desk"]
    assert [v.name for v in blocked_by_downgrade(vms, "4.5")] == ["build", "desk"]
    assert blocked_by_downgrade(vms, "5.1") == []
    vm = parse_vm_json(json.dumps({"kind": "local", "published_for": "5.0"}), "fallback")
    assert (vm.name, vm.kind) == ("fallback", "local")
    for bad in ("{", '{"kind": "other", "published_for": "5.0"}', '{"kind": "local"}', "[]"):
        with pytest.raises(ValueError):
            parse_vm_json(bad)


def test_marker_round_trip():
    data = new_marker(manifest(), "A", "SER", "2026-01-01T00:00:00+00:00")
    assert data["complete"] is False and data["slots"]["A"]["version"] == "5.0"
    assert parse_marker(json.dumps(data)) == data
    with pytest.raises(ValueError, match="lacks 'slot'"):
        parse_marker(
            json.dumps({"product": "Engine", "version": "5.0", "build": "1", "complete": True})
        )


def test_answer_file(tmp_path):
    answers = tmp_path / "a.toml"
    answers.write_text(
        '[install]\naction = "upgrade"\ntarget = "/dev/disk/by-id/ata-X"\neula = "accepted"\n'
        'keyboard = "de"\nkernel_args = ["quiet"]\n[source]\npath = "media"\n'
    )
    plan = plan_from_answers(answers)
    assert (plan.action, plan.keyboard, plan.kernel_args) == (Action.UPGRADE, "de", ["quiet"])
    assert plan.source == tmp_path / "media" and plan.confirmed
    answers.write_text('[install]\ntarget = "/dev/sda"\neula = "accepted"\ncolour = "red"\n')
    with pytest.raises(UserError, match="unknown key 'colour'"):
        plan_from_answers(answers)
    answers.write_text('[install]\ntarget = "/dev/sda"\neula = "accepted"\nkeyboard = "xx-yy"\n')
    with pytest.raises(UserError, match="unknown keyboard layout"):
        plan_from_answers(answers)
