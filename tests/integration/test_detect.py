"""Detection states on real loop disks, read without mounting or writing anything."""

from __future__ import annotations

import json
import os
import time

from diskhelpers import (
    MiB,
    add_vms,
    device_sha256,
    engine_installer,
    part,
    run,
)

from engine_installer.base.progress import ignore_progress
from engine_installer.install.live import live_snapshot
from engine_installer.install.plan import Action, Plan
from engine_installer.install.prepare import prepare
from engine_installer.install.runner import _Executor, run_plan
from engine_installer.machine.detect import detect_installs
from engine_installer.machine.probe import probe_disk
from engine_installer.ondisk.payload import load_manifest

SIZE = 720 * MiB


def _install(disk: str, payload, **kwargs) -> None:
    plan = Plan(target=disk, eula_accepted=True, lab_override=True, **kwargs)
    run_plan(plan, load_manifest(payload))


def _interrupted_install(disk: str, payload) -> None:
    """The runner's own steps, stopped after the slot write (as a power cut would)."""
    manifest = load_manifest(payload)
    plan = Plan(action=Action.INSTALL, target=disk, eula_accepted=True, lab_override=True)
    prepared = prepare(plan, live_snapshot(manifest, only=[disk]), manifest)
    executor = _Executor(prepared, ignore_progress)
    for action in prepared.actions:
        if action.kind == "bootloader":
            break
        executor.run(action)


def test_detection_states(make_loop, payloads):
    names = ("newer", "incomplete", "repairable", "ext4", "ntfs", "whole", "empty")
    newer, incomplete, damaged, foreign_ext4, foreign_ntfs, whole, empty = (
        make_loop(SIZE, name=n) for n in names
    )
    run(["mkfs.ext4", "-q", whole])  # a filesystem on the whole disk, no partition table
    _install(newer, payloads["5.1"])
    add_vms(newer, {"render": ("custom", "5.1")})
    _interrupted_install(incomplete, payloads["4.5"])
    _install(damaged, payloads["4.5"])
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    run(["mdel", "-i", part(damaged, 2), "::boot/grub/grubenv"], env=env)
    run(["sgdisk", "-n1:0:+200M", "-c1:data", foreign_ext4])
    run(["partx", "-a", foreign_ext4])
    run(["mkfs.ext4", "-q", part(foreign_ext4, 1)])
    # An NTFS-like Windows disk: a basic-data partition whose boot sector says NTFS.
    run(["sgdisk", "-n1:0:+200M", "-t1:0700", "-c1:Basic data partition", foreign_ntfs])
    run(["partx", "-a", foreign_ntfs])
    with open(part(foreign_ntfs, 1), "r+b") as handle:
        handle.write(b"\xebR\x90NTFS    " + bytes(500) + b"\x55\xaa")

    disks = [newer, incomplete, damaged, foreign_ext4, foreign_ntfs, whole, empty]
    before = {d: device_sha256(d) for d in disks}
    args = ["--source", str(payloads["5.0"]), "detect", "--json"]
    for disk in disks:
        args += ["--disk", disk]
    proc = engine_installer(*args)
    assert proc.returncode == 0, proc.stderr
    found = {entry["disk"]: entry for entry in json.loads(proc.stdout)}
    assert empty not in found  # empty disks are not listed
    assert found[newer]["state"] == "newer-than-media"
    assert (found[newer]["version"], found[newer]["active_slot"]) == ("5.1", "A")
    assert [vm["name"] for vm in found[newer]["vms"]] == ["render"]
    assert found[incomplete]["state"] == "incomplete"
    assert "never finished" in found[incomplete]["reason"]
    # The boot environment is gone, but GRUB still boots slot A: a repair, never a wipe.
    assert found[damaged]["state"] == "repairable"
    assert "boot environment" in found[damaged]["reason"]
    assert found[damaged]["repairs"] == ["bootenv"] and found[damaged]["version"] == "4.5"
    for foreign in (foreign_ext4, foreign_ntfs, whole):
        assert found[foreign]["state"] == "foreign", found[foreign]
        assert found[foreign]["reason"]
    for entry in found.values():
        assert set(entry) >= {"disk", "version", "build", "active_slot", "installed_at", "state"}
    # Detection reads only: every disk is byte-identical afterwards.
    assert {d: device_sha256(d) for d in disks} == before

    # The library call over four disks (the TUI's "existing install" screen).
    infos = [probe_disk(d) for d in disks[:4]]
    media = load_manifest(payloads["5.0"])
    started = time.monotonic()
    states = [i.state for i in detect_installs(infos, media)]
    print(f"detect_installs over 4 loop disks: {time.monotonic() - started:.3f} s")
    assert states == ["newer-than-media", "incomplete", "repairable", "foreign"]


def test_auto_refuses_what_is_not_blank_or_upgradeable_and_repair_restores(make_loop, payloads):
    """auto over a disk that needs a repair, or an incomplete install, refuses and writes
    nothing; repair restores the boot environment; an explicit reinstall replaces the
    incomplete install."""
    import pytest

    from engine_installer.base.errors import RefusedError

    disk = make_loop(SIZE)
    _install(disk, payloads["4.5"])
    add_vms(disk, {"desk": ("local", "4.5")})
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    run(["mdel", "-i", part(disk, 2), "::boot/grub/grubenv"], env=env)
    before = device_sha256(disk)
    with pytest.raises(RefusedError, match='action = "repair"'):
        _install(disk, payloads["5.0"])
    assert device_sha256(disk) == before
    _install(disk, payloads["5.0"], action=Action.REPAIR)
    [found] = detect_installs([probe_disk(disk)], load_manifest(payloads["5.0"]))
    assert (found.state, found.version, found.active_slot) == ("upgradeable", "4.5", "A")
    _install(disk, payloads["5.0"])
    [found] = detect_installs([probe_disk(disk)], load_manifest(payloads["5.0"]))
    assert (found.version, found.trial_slot, [v.name for v in found.vms]) == ("5.0", "B", ["desk"])

    other = make_loop(SIZE, name="other")
    _interrupted_install(other, payloads["4.5"])
    before = device_sha256(other)
    with pytest.raises(RefusedError, match="never finished"):
        _install(other, payloads["5.0"])
    assert device_sha256(other) == before
    _install(other, payloads["5.0"], action=Action.REINSTALL)
    [state] = detect_installs([probe_disk(other)], load_manifest(payloads["5.0"]))
    assert (state.state, state.version) == ("same-version", "5.0")
