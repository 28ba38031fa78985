"""Copy-engine faults on real loop disks: a slot write hitting I/O errors, a closed stdout, a
payload that does not match its manifest found while it is written.

The failing disk is a loop device over a sparse file on a tmpfs sized so that it fills up a few
MiB into the slot write: the loop device then fails every write that needs a new page, as a
dying disk would (ENOSPC from the backing file becomes an I/O error of the loop device). The
size is measured, not guessed: a first, good install on the same tmpfs records how full it is
when the slot write starts.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from diskhelpers import (
    VENV_BIN,
    engine_installer,
    esp_file,
    grubenv,
    loop_device,
    marker,
    run,
    slot_release,
    write_answers,
)

from engine_installer.base.errors import UserError
from engine_installer.disks.lock import disk_write_lock, lock_path
from engine_installer.install.plan import Action, Plan
from engine_installer.install.runner import run_plan
from engine_installer.ondisk.payload import load_manifest, write_manifest

MiB = 1024 * 1024
DISK = 900 * MiB
ROOM = 8 * MiB  # what the slot write may still allocate before the "disk" fails
EXIT_WITHIN = 30  # seconds, from the first failing write to the process's exit


@contextlib.contextmanager
def tmpfs(where: Path) -> Iterator[Path]:
    where.mkdir()
    run(["mount", "-t", "tmpfs", "-o", "size=1G", "tmpfs", str(where)])
    try:
        yield where
    finally:
        run(["umount", "--lazy", str(where)], check=False)


def used(mount: Path) -> int:
    st = os.statvfs(mount)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def engine_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(("copy-", "verify-"))]


def lock_is_free(disk: str) -> bool:
    path = lock_path(disk)
    if not path.exists():
        return True
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@pytest.fixture(scope="module")
def big_payload(payloads, tmp_path_factory) -> Path:
    """Engine 4.5 with an 80 MiB slot image: many more blocks than the copy's buffer pool, so a
    failing write finds the reader waiting for a free buffer (where the old pipeline hung)."""
    media = tmp_path_factory.mktemp("big") / "engine"
    shutil.copytree(payloads["4.5"], media)
    with open(media / "root.img", "r+b") as handle:
        handle.truncate(80 * MiB)  # zeros past the ext4 filesystem's end
    write_manifest(
        media,
        {
            "product": "Engine",
            "version": "4.5",
            "build": "45",
            "slot_size": 96 * MiB,
            "created": "2026-01-01T00:00:00Z",
        },
        {"root": "root.img", "kernel": "vmlinuz", "initrd": "initrd.img"},
    )
    return media


def test_slot_write_io_error_ends_the_install(big_payload: Path, tmp_path: Path) -> None:
    manifest = load_manifest(big_payload)
    with tmpfs(tmp_path / "tmpfs") as mount:
        # 1. A good install records how full the tmpfs is as the slot write starts.
        at_slot: list[int] = []

        def measure(event) -> None:
            if event.phase == "write-slot" and event.total > 1 and not at_slot:
                at_slot.append(used(mount))

        with loop_device(mount / "good.img", DISK) as disk:
            run_plan(Plan(target=disk, eula_accepted=True, lab_override=True), manifest, measure)
        (mount / "good.img").unlink()
        assert at_slot and manifest.root_image.size > 2 * ROOM
        run(["mount", "-o", f"remount,size={at_slot[0] + ROOM}", str(mount)])

        # 2. The real console script on a disk that fails a few MiB into the slot write.
        with loop_device(mount / "failing.img", DISK) as disk:
            answers = write_answers(tmp_path / "a.toml", disk, big_payload)
            started = time.monotonic()
            proc = subprocess.run(
                [str(VENV_BIN / "engine-installer"), "--answers", str(answers)],
                capture_output=True,
                text=True,
                timeout=120,  # the old pipeline hung here for ever
                check=False,
            )
            spent = time.monotonic() - started
            errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
            assert proc.returncode != 0
            assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
            assert f"writing {disk}p3 failed at byte" in errors[0], errors[0]
            assert "the disk holds no complete Engine now" in errors[0]
            assert spent < 120, f"the failed install took {spent:.0f} s"
            assert lock_is_free(disk)
            assert marker(disk)["complete"] is False
        (mount / "failing.img").unlink()

        # 3. The same in this process: the error comes back within seconds, every engine
        # thread is gone and the disk lock can be taken again at once.
        with loop_device(mount / "failing2.img", DISK) as disk:
            failed_at: list[float] = []

            def note(event) -> None:
                if event.phase == "write-slot" and event.total > 1 and not failed_at:
                    failed_at.append(time.monotonic())

            with pytest.raises(UserError, match="failed at byte") as caught:
                plan = Plan(target=disk, eula_accepted=True, lab_override=True)
                run_plan(plan, manifest, note)
            assert time.monotonic() - failed_at[0] < EXIT_WITHIN
            assert "the disk holds no complete Engine now" in str(caught.value)
            assert engine_threads() == []
            with disk_write_lock(disk):
                pass


def test_closed_stdout_never_stops_the_install(make_loop, payloads, tmp_path: Path) -> None:
    """`engine-installer --answers F | head -3`: the install completes, printing just stops."""
    disk = make_loop(DISK)
    answers = write_answers(tmp_path / "a.toml", disk, payloads["4.5"])
    proc = subprocess.Popen(
        [str(VENV_BIN / "engine-installer"), "--answers", str(answers)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        head = [proc.stdout.readline() for _ in range(3)]
        proc.stdout.close()  # what `head -3` does after its third line
        stderr = proc.communicate(timeout=300)[1]
    finally:
        proc.kill()
        proc.wait()
    assert len([line for line in head if line.strip()]) == 3, head
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr and "Exception" not in stderr, stderr
    mark = marker(disk)
    assert (mark["version"], mark["complete"]) == ("4.5", True)
    assert "VERSION=4.5" in slot_release(disk, "A")
    assert grubenv(disk, tmp_path)["engine_active"] == "A"


def test_install_payload_mismatch_found_while_writing(make_loop, payloads, tmp_path: Path):
    """The root image's hash is checked as it is written (no pass before): a damaged image
    fails the slot write with a sentence saying the disk holds no complete Engine now."""
    disk = make_loop(DISK)
    media = tmp_path / "engine"
    shutil.copytree(payloads["4.5"], media)
    manifest = load_manifest(media)
    with open(manifest.root_image.path, "r+b") as handle:
        handle.seek(manifest.root_image.size - 4096)
        handle.write(b"\xff" * 16)
    phases: list[str] = []
    plan = Plan(action=Action.INSTALL, target=disk, eula_accepted=True, lab_override=True)
    with pytest.raises(UserError, match="changed or read wrongly") as caught:
        run_plan(plan, manifest, lambda event: phases.append(event.phase))
    assert "the disk holds no complete Engine now: run the install again" in str(caught.value)
    assert "write-slot" in phases and "verify-slot" not in phases and "bootloader" not in phases
    assert marker(disk)["complete"] is False
    assert esp_file(disk, "boot/grub/grubenv") is None
    out = engine_installer("--source", str(payloads["4.5"]), "detect", "--json", "--disk", disk)
    assert '"incomplete"' in out.stdout, out.stdout + out.stderr
