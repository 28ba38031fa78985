"""Fault injection on loop disks: damaged tables, non-blank disks, bad inputs, a changing
machine, misleading words and cleanup after signals. Each test states what a technician would
check: the exit code, the one `error:` line, the disk's bytes (SHA-256 of the loop device's
backing file), and the disk as sgdisk, mtools, grub-editenv and debugfs read it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import threading
from pathlib import Path

import pytest
from diskhelpers import MiB, build_payload, run, write_answers
from faulthelpers import (
    SLOT_PARTS,
    Disk,
    OutputGate,
    attached,
    blank_disk,
    booted_slot,
    clean_leftovers,
    detect_json,
    detect_text,
    detected_boot,
    disk_copy,
    error_line,
    esp_read,
    grubenv_values,
    installer,
    kill_tree,
    leftovers,
    loop_backings,
    mounts,
    partition_rows,
    popen_installer,
    signal_tree,
    slot_sha256,
    sparse_copy,
    table_is_clean,
    wait_until,
)

from qemu.disks import storage_hashes
from tests.usb_helpers import build_iso, write_sums

ROOT_SIZE = 24 * MiB  # root.img of the integration payloads (diskhelpers.build_payload)


def answers(path: Path, disk: Disk, source: Path | None, **install) -> Path:
    return write_answers(path, disk.device, source, **install)


def refused(proc: subprocess.CompletedProcess, code: int | None, *words) -> str:
    """The one error line of a refusal; each word is a string or a tuple of alternatives."""
    line = error_line(proc)
    if code is None:
        assert proc.returncode != 0, proc.stdout
    else:
        assert proc.returncode == code, f"exit {proc.returncode}, want {code}: {line}"
    for word in words:
        options = word if isinstance(word, tuple) else (word,)
        assert any(o.lower() in line.lower() for o in options), f"{options} not in: {line}"
    return line


# -- 1. damaged partition tables on an Engine disk -------------------------------------------

DAMAGES = ("primary-header", "backup-header", "protective-mbr", "disk-shorter")
# How the error line may name each damage (any one of these words).
DAMAGE_WORDS = {
    "primary-header": ("primary",),
    "backup-header": ("backup", "secondary"),
    "protective-mbr": ("protective", "MBR"),
    "disk-shorter": ("shorter", "smaller", "beyond the end", "past the end", "end of the disk"),
}
SHORTER_BY = 512 * 1024  # the backup GPT falls off the end; every partition still fits


def damage(path: Path, how: str) -> None:
    """Damage an image file the way the issue describes (sgdisk -v calls each recoverable)."""
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        if how == "primary-header":
            handle.seek(512)
            handle.write(bytes(512))
        elif how == "backup-header":
            handle.seek(size - 512)
            handle.write(bytes(512))
        elif how == "protective-mbr":
            handle.write(bytes(512))
    if how == "disk-shorter":
        os.truncate(path, size - SHORTER_BY)


@contextlib.contextmanager
def damaged_disk(image, tmp_path: Path, how: str):
    backing = tmp_path / f"{how}.img"
    sparse_copy(image.path, backing)
    backing.chmod(0o644)
    damage(backing, how)
    with attached(backing) as disk:
        yield disk


def test_disk_shorter_keeps_every_partition(engine45_image):
    """The disk-shorter case only cuts off the backup GPT: the partitions themselves fit."""
    last_end = max(int(row.split()[2]) for row in engine45_image.table)
    new_sectors = (engine45_image.path.stat().st_size - SHORTER_BY) // 512
    assert last_end + 34 < new_sectors


@pytest.mark.parametrize("how", DAMAGES)
def test_auto_and_upgrade_refuse_damaged_table(how, engine45_image, payloads, tmp_path):
    with damaged_disk(engine45_image, tmp_path, how) as disk:
        before = disk.digest()
        for action in ("auto", "upgrade"):
            for dry in ([], ["--dry-run"]):
                file = answers(tmp_path / f"{action}.toml", disk, payloads["5.0"], action=action)
                proc = installer("--answers", str(file), *dry)
                refused(proc, 3, DAMAGE_WORDS[how], "repair")
        assert disk.digest() == before


@pytest.mark.parametrize("how", DAMAGES)
def test_detect_lists_damaged_table_as_engine_disk(how, engine45_image, payloads, tmp_path):
    with damaged_disk(engine45_image, tmp_path, how) as disk:
        before = disk.digest()
        found = detect_json(disk.device, payloads["5.0"])
        assert [e["disk"] for e in found] == [disk.device], found
        [entry] = found
        assert entry["state"] != "foreign", entry
        text = json.dumps(entry).lower()
        assert "repair" in text, entry
        assert "reinstall" not in text, entry
        assert disk.digest() == before


@pytest.mark.parametrize("how", DAMAGES)
def test_repair_then_upgrade_keeps_vms(how, engine45_image, payloads, tmp_path):
    image = engine45_image
    with damaged_disk(image, tmp_path, how) as disk:
        file = answers(tmp_path / "repair.toml", disk, payloads["5.0"], action="repair")
        proc = installer("--answers", str(file))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        run(["partx", "-u", disk.device], check=False)
        assert table_is_clean(disk.device), run(["sgdisk", "-v", disk.device]).stdout
        assert partition_rows(disk.device) == image.table
        with open(disk.device, "rb") as handle:
            mbr = handle.read(512)
        assert mbr[:440] == image.mbr[:440], "the BIOS boot code in the MBR is not back"
        assert mbr[510:] == b"\x55\xaa"
        assert storage_hashes(disk.device) == image.vm_hashes
        assert slot_sha256(disk.device, "A", ROOT_SIZE) == image.root_sha256["4.5"]
        [entry] = detect_json(disk.device, payloads["5.0"])
        assert (entry["state"], entry["version"]) == ("upgradeable", "4.5"), entry

        file = answers(tmp_path / "auto.toml", disk, payloads["5.0"], action="auto")
        proc = installer("--answers", str(file))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "upgraded" in proc.stdout
        assert storage_hashes(disk.device) == image.vm_hashes
        assert booted_slot(disk.device, tmp_path) == ("B", "A")
        assert slot_sha256(disk.device, "B", ROOT_SIZE) == image.root_sha256["5.0"]
        assert table_is_clean(disk.device)


# -- 2. auto installs only on a blank disk ----------------------------------------------------


def _mdadm_superblock() -> bytes:
    """An mdadm 1.2 member superblock (what `mdadm --create` writes 4 KiB into a member)."""
    sb = bytearray(256 + 2 * 2)
    struct.pack_into("<IIII", sb, 0, 0xA92B4EFC, 1, 0, 0)  # magic, major, feature map, pad
    sb[16:32] = bytes(range(16))  # array UUID
    sb[32:64] = b"laptop:0".ljust(32, b"\0")
    struct.pack_into("<QiIQIi", sb, 64, 1_700_000_000, 1, 0, 1_000_000, 0, 2)
    struct.pack_into("<QQQ", sb, 128, 2048, 1_000_000, 8)  # data offset/size, super offset
    sb[168:184] = bytes(range(16, 32))  # device UUID
    struct.pack_into("<I", sb, 220, 2)  # max_dev
    csum = sum(struct.unpack_from(f"<{len(sb) // 4}I", sb))
    struct.pack_into("<I", sb, 216, ((csum & 0xFFFFFFFF) + (csum >> 32)) & 0xFFFFFFFF)
    return bytes(sb)


def make_not_blank(disk: Disk, kind: str) -> None:
    if kind == "ext4-whole-disk":
        run(["mkfs.ext4", "-q", "-F", disk.device])
    elif kind == "mbr-table":
        run(["sfdisk", "-q", disk.device], input="label: dos\n,100MiB,83\n")
    elif kind == "windows-gpt":
        run(["sgdisk", "-n1:0:+100M", "-t1:ef00", "-c1:EFI system partition",
             "-n2:0:+16M", "-t2:0c01", "-c2:Microsoft reserved partition",
             "-n3:0:0", "-t3:0700", "-c3:Basic data partition", disk.device])  # fmt: skip
    elif kind == "mdadm-raid":
        with open(disk.device, "r+b") as handle:
            handle.seek(4096)
            handle.write(_mdadm_superblock())
    run(["partx", "-d", disk.device], check=False)
    blkid = run(["blkid", "-p", disk.device], check=False).stdout
    assert blkid.strip(), f"{kind}: blkid sees nothing on the disk"


NOT_BLANK = ("ext4-whole-disk", "mbr-table", "windows-gpt", "mdadm-raid")


@pytest.mark.parametrize("kind", NOT_BLANK)
def test_auto_refuses_a_disk_that_is_not_blank(kind, payloads, tmp_path):
    with blank_disk(tmp_path) as disk:
        make_not_blank(disk, kind)
        before = disk.digest()
        file = answers(tmp_path / "a.toml", disk, payloads["5.0"], action="auto")
        for dry in ([], ["--dry-run"]):
            refused(installer("--answers", str(file), *dry), 3)
        assert disk.digest() == before


@pytest.mark.parametrize("kind", NOT_BLANK)
def test_explicit_install_proceeds_on_a_disk_that_is_not_blank(kind, payloads, tmp_path):
    with blank_disk(tmp_path) as disk:
        make_not_blank(disk, kind)
        file = answers(tmp_path / "a.toml", disk, payloads["5.0"], action="install")
        proc = installer("--answers", str(file))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        run(["partx", "-u", disk.device], check=False)
        assert table_is_clean(disk.device)
        [entry] = detect_json(disk.device, payloads["5.0"])
        assert (entry["state"], entry["version"]) == ("same-version", "5.0"), entry


# -- 3. inputs validated by type before any write ---------------------------------------------


@pytest.fixture(scope="module")
def payload_40(tmp_path_factory) -> Path:
    """Engine 4.0: installing it over 4.5 is a downgrade."""
    return build_payload(tmp_path_factory.mktemp("payload-4.0"), "4.0", "40")


@pytest.mark.parametrize("value", ["false", "true"])
def test_allow_downgrade_must_be_a_boolean(value, engine45_image, payload_40, tmp_path):
    with disk_copy(engine45_image.path, tmp_path) as disk:
        before = disk.digest()
        file = answers(tmp_path / "a.toml", disk, payload_40, allow_downgrade=value)
        for dry in ([], ["--dry-run"]):
            proc = installer("--answers", str(file), *dry)
            refused(proc, 2, "allow_downgrade", value, "true or false")
        assert disk.digest() == before


BAD_KERNEL_ARGS = {
    "quote": ["a'b"],
    "newline": ["quiet\nsplash"],
    "empty": [""],
    "string-not-list": "quiet",
    "40-KB": ["x" * 1000] * 40,
    "33-args": [f"a{i}" for i in range(33)],
    "257-chars": ["x" * 257],
    "over-2-KiB-in-total": [f"opt{i}=" + "y" * 200 for i in range(12)],
    "dollar": ["init=$HOME"],
    "semicolon": ["a;reboot"],
    "integer": 5,
    "list-of-integers": [1, 2],
}


@pytest.mark.parametrize("case", sorted(BAD_KERNEL_ARGS))
def test_bad_kernel_args_refused_before_any_write(case, engine45_image, payloads, tmp_path):
    """A reinstall would wipe the VMs first: the check must come before anything is written."""
    with disk_copy(engine45_image.path, tmp_path) as disk:
        before = disk.digest()
        file = answers(
            tmp_path / "a.toml",
            disk,
            payloads["5.0"],
            action="reinstall",
            kernel_args=BAD_KERNEL_ARGS[case],
        )
        for dry in (["--dry-run"], []):
            refused(installer("--answers", str(file), *dry), 2, "kernel_args")
        assert disk.digest() == before


@pytest.fixture(scope="module")
def edited_iso(tmp_path_factory, payloads) -> tuple[Path, Path]:
    """(a good ISO, the same ISO whose engine/manifest.json was edited after SHA256SUMS)."""
    base = tmp_path_factory.mktemp("iso")
    result = []
    for name in ("good", "edited"):
        tree = base / name
        shutil.copytree(payloads["5.0"], tree / "engine")
        (tree / "boot").mkdir()
        (tree / "boot" / "eltorito.img").write_bytes(b"\xeb\x3c\x90" + bytes(2045))
        write_sums(tree)
        if name == "edited":
            manifest = tree / "engine" / "manifest.json"
            data = json.loads(manifest.read_text())
            data["created"] = "2026-02-02T00:00:00Z"  # still a valid manifest
            manifest.write_text(json.dumps(data, indent=2) + "\n")
        result.append(build_iso(tree, base / f"{name}.iso"))
    return result[0], result[1]


def test_iso_with_edited_manifest_refused(edited_iso, engine45_image, tmp_path):
    good, edited = edited_iso
    with disk_copy(engine45_image.path, tmp_path) as disk:
        before = disk.digest()
        file = answers(tmp_path / "good.toml", disk, good)
        proc = installer("--answers", str(file), "--dry-run")
        assert proc.returncode == 0, proc.stderr  # the ISO itself is a valid source
        file = answers(tmp_path / "edited.toml", disk, edited)
        for dry in (["--dry-run"], []):
            refused(installer("--answers", str(file), *dry), None, "SHA256SUMS")
        # The same ISO named on the command line instead of in [source].
        file = answers(tmp_path / "no-source.toml", disk, None)
        for dry in (["--dry-run"], []):
            proc = installer("--source", str(edited), "--answers", str(file), *dry)
            refused(proc, None, "SHA256SUMS")
        assert disk.digest() == before


MANIFEST_EDITS = {
    "version-five": (lambda m: m.update(version="five"), "version"),
    "version-empty": (lambda m: m.update(version=""), "version"),
    "slot-size-not-MiB": (lambda m: m.update(slot_size=m["slot_size"] + 1), "slot_size"),
    "artifacts-list": (lambda m: m.update(artifacts=[1, 2]), "artifacts"),
    "sha256-missing": (lambda m: m["artifacts"]["root"].pop("sha256"), "sha256"),
}


@pytest.mark.parametrize("case", sorted(MANIFEST_EDITS))
def test_manifest_field_errors(case, engine45_image, payloads, tmp_path):
    edit, field = MANIFEST_EDITS[case]
    payload = tmp_path / "engine"
    shutil.copytree(payloads["5.0"], payload)
    manifest = json.loads((payload / "manifest.json").read_text())
    edit(manifest)
    (payload / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    with disk_copy(engine45_image.path, tmp_path) as disk:
        before = disk.digest()
        file = answers(tmp_path / "a.toml", disk, payload)
        for dry in (["--dry-run"], []):
            refused(installer("--answers", str(file), *dry), 2, field)
        assert disk.digest() == before


# -- 4. a machine that changes during the scan ------------------------------------------------


def test_detect_while_partitions_come_and_go(engine45_image, payloads, tmp_path):
    with disk_copy(engine45_image.path, tmp_path) as disk:
        stop = threading.Event()

        def churn() -> None:
            while not stop.is_set():
                run(["partx", "-d", disk.device], check=False)
                run(["partx", "-a", disk.device], check=False)

        worker = threading.Thread(target=churn, daemon=True)
        worker.start()
        failures = []
        try:
            for i in range(24):
                args = ["detect", "--json"] + (["--disk", disk.device] if i % 2 else [])
                proc = installer("--source", str(payloads["5.0"]), *args)
                out = proc.stdout + proc.stderr
                if "Traceback" in out or (
                    proc.returncode != 0 and not proc.stderr.startswith("error: ")
                ):
                    failures.append(
                        f"detect {' '.join(args)} exit {proc.returncode}:\n{out[-1500:]}"
                    )
        finally:
            stop.set()
            worker.join(timeout=30)
        assert not failures, failures[0]


# -- 5. words that say what is true -----------------------------------------------------------


def test_target_given_as_a_list(engine45_image, payloads, tmp_path):
    with disk_copy(engine45_image.path, tmp_path) as disk:
        before = disk.digest()
        file = tmp_path / "a.toml"
        file.write_text(
            f'[install]\ntarget = ["{disk.device}"]\neula = "accepted"\naction = "auto"\n'
            f'[source]\npath = "{payloads["5.0"]}"\n'
        )
        line = refused(installer("--answers", str(file)), 2, "target", ("string", "path"))
        assert "does not exist" not in line
        assert disk.digest() == before


def _stop_after_boot_switch(disk: Disk, file: Path, tmp_path: Path) -> None:
    """Run an upgrade and stop it at the first step boundary after the boot-environment
    write (the installer blocks on its next progress line), then kill it there."""
    gate = OutputGate(["--answers", str(file)], {}, tmp_path / "stderr")
    try:
        while True:
            env = grubenv_values(disk.device, tmp_path) or {}
            if env.get("engine_trial") == "B":
                break
            assert gate.step(), "the upgrade ended without a boot switch:\n" + "\n".join(gate.lines)
        assert gate.proc.poll() is None and gate.blocked()
    finally:
        gate.close()
        clean_leftovers(disk)


def test_detect_after_cut_between_boot_switch_and_marker_switch(engine45_image, payloads, tmp_path):
    with disk_copy(engine45_image.path, tmp_path) as disk:
        file = answers(tmp_path / "a.toml", disk, payloads["5.0"])
        _stop_after_boot_switch(disk, file, tmp_path)
        raw = esp_read(disk.device, "engine/install.json")
        marker = json.loads(raw) if raw else {}
        assert (marker.get("version"), marker.get("slot")) != (
            "5.0",
            "B",
        ), "the marker switch was already written: the state under test was not reached"
        assert booted_slot(disk.device, tmp_path) == ("B", "A")
        assert slot_sha256(disk.device, "B", ROOT_SIZE) == engine45_image.root_sha256["5.0"]
        [entry] = detect_json(disk.device, payloads["5.0"])
        assert detected_boot(entry) == ("5.0", "B"), entry
        text = detect_text(disk.device, payloads["5.0"])
        assert "trial" in text and "5.0" in text, text
        assert not re.search(r"4\.5 build 45, slot B", text), text
        assert storage_hashes(disk.device) == engine45_image.vm_hashes


def _mounted_partitions(disk: Disk) -> list[str]:
    return [target for source, target in mounts() if source.startswith(disk.device + "p")]


def test_disk_busy_with_another_installer_is_called_so(engine45_image, payloads, tmp_path):
    """Installer 1 is frozen while it has the disk mounted; installer 2 on the same disk is told
    another installer is writing it (not that a /tmp/... mount makes it 'in use')."""
    with disk_copy(engine45_image.path, tmp_path) as disk:
        file = answers(tmp_path / "a.toml", disk, payloads["5.0"], action="reinstall")
        log = open(tmp_path / "first.out", "wb")  # noqa: SIM115
        first = popen_installer(["--answers", str(file)], {}, log, subprocess.STDOUT)
        try:
            seen = wait_until(
                lambda: bool(_mounted_partitions(disk)) or first.poll() is not None, 180, 0.0005
            )
            assert seen and first.poll() is None, "installer 1 never mounted the disk"
            signal_tree(first, signal.SIGSTOP)
            assert _mounted_partitions(disk), "installer 1 unmounted before it froze"
            proc = installer("--answers", str(file))
            line = refused(proc, 3)
            assert re.search(r"another (Engine )?installer", line), line
            # The way out is to wait for it, not to pull its mounts away.
            assert "mounted at" not in line and "unmount" not in line, line
            signal_tree(first, signal.SIGCONT)
            assert first.wait(timeout=300) == 0, (tmp_path / "first.out").read_text()
        finally:
            if first.poll() is None:
                kill_tree(first)
            log.close()
            clean_leftovers(disk)


# -- 6. cleanup on every exit path ------------------------------------------------------------


def _triggers(disk: Disk, tmpdir: Path) -> dict:
    """When to send the signal: as a resource of the installer appears (mount(8) sets up the
    loop device of GRUB's scratch image before it mounts it)."""

    def scratch_loop() -> bool:
        return any(backing.startswith(str(tmpdir)) for backing in loop_backings().values())

    def scratch_mount() -> bool:
        # A mount of a loop device over a file in the temp dir: the scratch image (an ISO
        # source, mounted where the kernel has iso9660, lives elsewhere).
        backings = loop_backings().items()
        scratch = {dev for dev, backing in backings if backing.startswith(str(tmpdir))}
        return any(source in scratch for source, _t in mounts())

    def storage_mount() -> bool:
        return any(source == disk.part(5) for source, _t in mounts())

    return {
        "grub-scratch-loop": scratch_loop,
        "grub-scratch-mount": scratch_mount,
        "storage-mount": storage_mount,
    }


@pytest.mark.parametrize("when", ["grub-scratch-loop", "grub-scratch-mount", "storage-mount"])
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_signal_mid_install_leaves_nothing_behind(sig, when, engine45_image, edited_iso, tmp_path):
    """SIGTERM (to the installer, as `kill` does) or SIGINT (to its process group, as Ctrl-C
    does) while it holds a mount: no mount, loop device or temp file of it is left, and a
    retry of the same answer file in the same session completes."""
    good_iso, _edited = edited_iso
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = {"TMPDIR": str(tmpdir)}
    with disk_copy(engine45_image.path, tmp_path) as disk:
        file = answers(tmp_path / "a.toml", disk, good_iso, action="reinstall")
        out = open(tmp_path / "first.out", "wb")  # noqa: SIM115
        proc = popen_installer(["--answers", str(file)], env, out, subprocess.STDOUT)
        try:
            trigger = _triggers(disk, tmpdir)[when]
            hit = wait_until(lambda: trigger() or proc.poll() is not None, 180, 0.0005)
            assert hit and proc.poll() is None, f"the installer never reached {when}"
            if sig == "SIGTERM":
                proc.send_signal(signal.SIGTERM)
            else:
                os.killpg(proc.pid, signal.SIGINT)
            code = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                kill_tree(proc)
            out.close()
        output = (tmp_path / "first.out").read_text(errors="replace")
        try:
            # Exit 0 only when the install finished regardless (a signal at the very end).
            assert code != 0 or "reinstalled" in output, output
            assert "Traceback" not in output, output
            assert leftovers(disk, tmpdir) == [], output
            assert sorted(p.name for p in tmpdir.iterdir()) == [], "temp files left behind"
        finally:
            clean_leftovers(disk, tmpdir)
        retry = installer("--answers", str(file), env=env)
        assert retry.returncode == 0, retry.stdout + retry.stderr
        assert leftovers(disk, tmpdir) == []
        [entry] = detect_json(disk.device, None)
        assert (entry["state"], entry["version"]) == ("upgradeable", "5.0"), entry


def test_sigkilled_run_leftovers_are_cleaned_by_the_next_run(engine45_image, payloads, tmp_path):
    """The real thing: SIGKILL an installer while it has the storage partition mounted (at the
    end of a reinstall), then run it again in the same session."""
    with disk_copy(engine45_image.path, tmp_path) as disk:
        file = answers(tmp_path / "a.toml", disk, payloads["5.0"], action="reinstall")
        out = open(tmp_path / "first.out", "wb")  # noqa: SIM115
        proc = popen_installer(["--answers", str(file)], {}, out, subprocess.STDOUT)
        stale: list[str] = []
        try:
            storage = lambda: any(s == disk.part(5) for s, _t in mounts())  # noqa: E731
            hit = wait_until(lambda: storage() or proc.poll() is not None, 180, 0.0005)
            assert hit and proc.poll() is None, "the installer never mounted storage"
            kill_tree(proc)
            stale = [t for s, t in mounts() if s == disk.part(5)]
            assert stale, "the killed installer left no mount: the scenario did not happen"
            retry = installer("--answers", str(file))
            assert retry.returncode == 0, retry.stdout + retry.stderr
            assert [t for s, t in mounts() if s == disk.part(5)] == [], stale
        finally:
            if proc.poll() is None:
                kill_tree(proc)
            out.close()
            clean_leftovers(disk)
            for target in stale:
                with contextlib.suppress(OSError):
                    Path(target).rmdir()
        [entry] = detect_json(disk.device, payloads["5.0"])
        assert (entry["state"], entry["version"]) == ("same-version", "5.0"), entry


def test_slot_parts_match_layout(engine45_image):
    """The helpers read slots A/B as partitions 3/4, as docs/backend.md lays the disk out."""
    names = [row.split()[-1] for row in engine45_image.table]
    assert names == [
        "engine-bios",
        "engine-esp",
        "engine-root-a",
        "engine-root-b",
        "engine-storage",
    ]
    assert SLOT_PARTS == {"A": 3, "B": 4}
