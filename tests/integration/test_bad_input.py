"""Every bad input in the issue: one `error:` line naming problem and fix, non-zero exit,
and the target disk's bytes unchanged (SHA-256 of the loop device before and after)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path

import pytest
from diskhelpers import (
    GiB,
    add_vms,
    device_sha256,
    engine_installer,
    loop_device,
    mounted,
    part,
    run,
    write_answers,
)

from engine_installer.install.plan import Plan
from engine_installer.install.runner import run_plan
from engine_installer.ondisk.payload import load_manifest


@pytest.fixture(scope="module")
def engine51(tmp_path_factory, payloads):
    """A disk holding Engine 5.1 with a VM published for 5.1 (module-wide, read-only)."""
    base = tmp_path_factory.mktemp("engine51")
    with loop_device(base / "disk.img", 720 * 1024 * 1024) as disk:
        plan = Plan(target=disk, eula_accepted=True, lab_override=True)
        run_plan(plan, load_manifest(payloads["5.1"]))
        add_vms(disk, {"render": ("custom", "5.1"), "notes": ("local", "4.5")})
        yield disk, device_sha256(disk)


def assert_refused(proc, *words: str) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0, proc.stdout
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    for word in words:
        assert word in lines[0], lines[0]


def _bad_payload(tmp_path: Path, source: Path, how: str) -> Path:
    copy = tmp_path / "engine"
    shutil.copytree(source, copy)
    image = copy / "root.img"
    if how == "flip":
        with open(image, "r+b") as handle:
            handle.seek(4096)
            byte = handle.read(1)
            handle.seek(4096)
            handle.write(bytes([byte[0] ^ 0xFF]))
    else:
        with open(image, "r+b") as handle:
            handle.truncate(image.stat().st_size // 2)
    return copy


CASES = {
    "truncated-image": ({"action": "reinstall"}, "truncate", ("truncated",)),
    "unknown-key": ({"colour": "red"}, None, ("unknown key 'colour'",)),
    "unknown-keyboard": ({"keyboard": "klingon"}, None, ("unknown keyboard layout 'klingon'",)),
    "downgrade": ({"action": "auto"}, None, ("downgrade", "render (custom, for 5.1)")),
    "install-over-engine": ({"action": "install"}, None, ("already holds Engine 5.1",)),
    "upgrade-needs-engine": ({"action": "upgrade"}, None, ("newer",)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_answers_leave_disk_unchanged(case, engine51, payloads, tmp_path):
    disk, before = engine51
    install, payload_fault, words = CASES[case]
    source = payloads["5.0"]
    if payload_fault:
        source = _bad_payload(tmp_path, source, payload_fault)
    answers = write_answers(tmp_path / "a.toml", disk, source, **install)
    assert_refused(engine_installer("--answers", str(answers)), *words)
    assert device_sha256(disk) == before


def test_payload_hash_mismatch_found_while_writing(make_loop, payloads, tmp_path):
    """The root image's hash is checked while it is written (no separate pass before). An
    upgrade that meets a bad image switches nothing: the old Engine boots, the VMs are
    intact. A reinstall has already erased the disk and says so."""
    from diskhelpers import tree_hashes

    bad = _bad_payload(tmp_path, payloads["5.0"], "flip")
    disk = make_loop(720 * 1024 * 1024)
    run_plan(
        Plan(target=disk, eula_accepted=True, lab_override=True), load_manifest(payloads["4.5"])
    )
    add_vms(disk, {"notes": ("local", "4.5")})
    vms = tree_hashes(disk)
    answers = write_answers(tmp_path / "up.toml", disk, bad, action="upgrade")
    assert_refused(
        engine_installer("--answers", str(answers)),
        "hash",
        "Engine 4.5 still boots from slot A",
    )
    assert tree_hashes(disk) == vms
    proc = engine_installer("--source", str(payloads["5.0"]), "detect", "--json", "--disk", disk)
    [found] = json.loads(proc.stdout)
    assert (found["state"], found["version"], found["trial_slot"]) == ("upgradeable", "4.5", "")
    answers = write_answers(tmp_path / "re.toml", disk, bad, action="reinstall")
    assert_refused(engine_installer("--answers", str(answers)), "hash", "no complete Engine")


def test_mounted_partition_refused(engine51, payloads, tmp_path):
    disk, before = engine51
    answers = write_answers(tmp_path / "a.toml", disk, payloads["5.0"], action="reinstall")
    with mounted(part(disk, 5), readonly=True) as where:
        assert_refused(engine_installer("--answers", str(answers)), "in use", str(where))
    assert device_sha256(disk) == before


@pytest.mark.parametrize("target", ["partition", "file", "missing", "chardev"])
def test_target_not_a_disk(target, engine51, payloads, tmp_path):
    disk, before = engine51
    path = {
        "partition": part(disk, 3),
        "file": str(tmp_path / "plain.img"),
        "missing": "/dev/disk/by-id/no-such-disk",
        "chardev": "/dev/null",
    }[target]
    (tmp_path / "plain.img").write_bytes(b"\0" * 4096)
    answers = write_answers(tmp_path / "a.toml", path, payloads["5.0"], action="reinstall")
    words = {"partition": ("partition, not a whole disk",), "missing": ("does not exist",)}
    assert_refused(engine_installer("--answers", str(answers)), *words.get(target, ("not a",)))
    assert device_sha256(disk) == before


def test_disk_too_small(payloads, tmp_path):
    with loop_device(tmp_path / "small.img", 600 * 1024 * 1024) as disk:
        before = device_sha256(disk)
        answers = write_answers(tmp_path / "a.toml", disk, payloads["5.0"])
        assert_refused(engine_installer("--answers", str(answers)), "too small", "bigger disk")
        assert device_sha256(disk) == before


def test_boot_medium_refused(payloads, tmp_path):
    """The payload lives on the target disk itself (as on a USB stick): refused."""
    with loop_device(tmp_path / "medium.img", int(1.2 * GiB)) as disk:
        run(["mkfs.ext4", "-q", disk])
        with mounted(disk) as root:
            shutil.copytree(payloads["5.0"], root / "engine")
        with mounted(disk, readonly=True) as root:
            before = device_sha256(disk)
            answers = write_answers(tmp_path / "a.toml", disk, root / "engine")
            assert_refused(engine_installer("--answers", str(answers)), "boot medium")
            assert device_sha256(disk) == before


def test_second_installer_on_same_disk_refused(engine51, payloads, tmp_path):
    """tty1 and ttyS0 each run an installer: while one writes a disk, the other is refused."""
    from engine_installer.disks.lock import lock_path

    disk, before = engine51
    answers = write_answers(tmp_path / "a.toml", disk, payloads["5.0"], action="reinstall")
    fd = os.open(lock_path(disk), os.O_RDWR | os.O_CREAT)
    try:
        os.write(fd, b"pid 1234 on ttyS0")
        fcntl.flock(fd, fcntl.LOCK_EX)  # what a running installer holds while it writes
        assert_refused(engine_installer("--answers", str(answers)), "already writing", "ttyS0")
    finally:
        os.close(fd)
    assert device_sha256(disk) == before
