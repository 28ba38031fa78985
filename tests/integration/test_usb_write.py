"""engine-usb on real loop devices (root): write + verify, refusals, parallel sticks.

Each refusal proves the device untouched by hashing its backing file before and after. Every
loop device (and device-mapper table) is created here and removed in a finally block.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qemu.loops import INTEGRATION, attach, detach
from tests.usb_helpers import file_offset_in_iso, make_engine_iso

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for loop devices"),
    pytest.mark.skipif(shutil.which("xorriso") is None, reason="needs xorriso"),
]

ENGINE_USB = str(Path(sys.executable).with_name("engine-usb"))
MIB = 1024 * 1024


def run(*args: str, check_rc: int | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [ENGINE_USB, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300
    )
    if check_rc is not None:
        assert done.returncode == check_rc, done.stdout + done.stderr
    return done


def sha(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(4 * MIB):
            digest.update(block)
    return digest.hexdigest()


def one_error_line(done: subprocess.CompletedProcess) -> str:
    """The user sees exactly one line, starting 'error:', and no traceback."""
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


class Loop:
    def __init__(self, backing: Path, device: str) -> None:
        self.backing, self.device = backing, device


@pytest.fixture
def loops(tmp_path: Path):
    """Factory: loops(size) -> Loop, pre-filled with a pattern so any write shows."""
    made: list[Loop] = []

    def make(size: int) -> Loop:
        backing = tmp_path / f"stick{len(made)}.img"
        pattern = hashlib.shake_256(backing.name.encode()).digest(MIB)
        with open(backing, "wb") as handle:
            for _ in range(size // MIB):
                handle.write(pattern)
        loop = Loop(backing, attach(backing, INTEGRATION))
        made.append(loop)
        return loop

    try:
        yield make
    finally:
        for loop in made:
            detach(loop.device)


@pytest.fixture(scope="module")
def iso(tmp_path_factory) -> Path:
    return make_engine_iso(tmp_path_factory.mktemp("iso"), root_img_size=8 * MIB)


def test_write_and_verify(iso: Path, loops) -> None:
    stick = loops(32 * MIB)
    before = stick.backing.read_bytes()
    done = run("write", str(iso), stick.device, "--yes", "--allow-non-removable", check_rc=0)
    assert "written" not in done.stderr.lower() or "error" not in done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith(stick.device))
    assert row.split()[-5] == "ok" or " ok " in row
    after = stick.backing.read_bytes()
    size = iso.stat().st_size
    assert after[:size] == iso.read_bytes()
    assert after[-MIB:] == bytes(MIB), "the last MiB (stale backup GPT) must be cleared"
    assert after[size + MIB : -MIB] == before[size + MIB : -MIB], "nothing else is touched"
    verified = run("verify", str(iso), stick.device, check_rc=0)
    assert "holds exactly" in verified.stdout


def test_json_progress_lines(iso: Path, loops) -> None:
    stick = loops(32 * MIB)
    done = run("write", str(iso), stick.device, "--yes", "--json", "--allow-non-removable")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    phases = [r["phase"] for r in records if r.get("device") == stick.device]
    assert phases[0] == "writing" and phases[-1] == "done"
    assert {"writing", "syncing", "verifying"} <= set(phases)
    assert all({"percent", "mb_per_s", "eta_s"} <= set(r) for r in records if "phase" in r)
    result = records[-1]
    assert result["result"] == stick.device and result["ok"] is True


def test_verify_reads_the_stick_not_the_page_cache(iso: Path, loops) -> None:
    stick = loops(32 * MIB)
    run("write", str(iso), stick.device, "--yes", "--allow-non-removable", check_rc=0)
    offset = file_offset_in_iso(iso, "/engine/root.img") + 4096
    # The last close of a block device drops its page cache, so keep one reader open throughout.
    with open(stick.device, "rb") as cached:
        cached.read()  # good data now in the loop device's page cache
        with open(stick.backing, "r+b") as backing:  # the "stick" rots underneath the cache
            backing.seek(offset)
            good = backing.read(16)
            backing.seek(offset)
            backing.write(bytes(b ^ 0xFF for b in good))
            backing.flush()
            os.fsync(backing.fileno())
        cached.seek(offset)
        assert cached.read(16) == good, "a buffered read is fooled by the page cache..."
        done = run("verify", str(iso), stick.device)  # ...engine-usb's O_DIRECT read is not
    assert done.returncode != 0
    assert "does not hold" in one_error_line(done)


def test_mounted_stick_refused_with_no_unmount_then_unmounted(iso: Path, loops, tmp_path) -> None:
    stick = loops(32 * MIB)
    mkfs = ["mkfs.ext4", "-q", "-E", "lazy_itable_init=0,lazy_journal_init=0", stick.device]
    subprocess.run(mkfs, check=True)
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    # Read-only, so the filesystem itself writes nothing while the test hashes the device.
    subprocess.run(["mount", "-o", "ro", stick.device, str(mountpoint)], check=True)
    try:
        before = sha(stick.backing)
        done = run(
            "write", str(iso), stick.device, "--yes", "--no-unmount", "--allow-non-removable"
        )
        assert done.returncode != 0
        assert "is mounted" in one_error_line(done)
        assert sha(stick.backing) == before
        # Without --no-unmount the stick is unmounted and written.
        run("write", str(iso), stick.device, "--yes", "--allow-non-removable", check_rc=0)
        assert str(mountpoint) not in Path("/proc/mounts").read_text()
    finally:
        subprocess.run(["umount", str(mountpoint)], capture_output=True, check=False)
    run("verify", str(iso), stick.device, check_rc=0)


def test_busy_stick_refused(iso: Path, loops) -> None:
    stick = loops(32 * MIB)
    before = sha(stick.backing)
    holder = os.open(stick.device, os.O_RDONLY | os.O_EXCL)
    try:
        done = run("write", str(iso), stick.device, "--yes", "--allow-non-removable")
    finally:
        os.close(holder)
    assert done.returncode != 0
    assert "is busy" in one_error_line(done)
    assert sha(stick.backing) == before


def test_partition_refused(iso: Path, loops) -> None:
    stick = loops(32 * MIB)
    subprocess.run(
        ["sfdisk", "--quiet", stick.device], input="start=2048, type=83\n", text=True, check=True
    )
    subprocess.run(["partx", "-a", stick.device], check=True)
    partition = f"{stick.device}p1"
    assert Path(partition).is_block_device()
    before = sha(stick.backing)
    done = run("write", str(iso), partition, "--yes", "--allow-non-removable")
    assert done.returncode != 0
    assert f"is a partition of {stick.device}" in one_error_line(done)
    assert sha(stick.backing) == before


def test_too_small_refused(iso: Path, loops) -> None:
    stick = loops(4 * MIB)
    before = sha(stick.backing)
    done = run("write", str(iso), stick.device, "--yes", "--allow-non-removable")
    assert done.returncode != 0
    assert "smaller than the ISO" in one_error_line(done)
    assert sha(stick.backing) == before


def test_bad_input_leaves_stick_untouched(iso: Path, loops, tmp_path: Path) -> None:
    stick = loops(32 * MIB)
    before = sha(stick.backing)
    truncated = tmp_path / "truncated.iso"
    truncated.write_bytes(iso.read_bytes()[: iso.stat().st_size // 2])
    damaged = tmp_path / "damaged.iso"
    shutil.copyfile(iso, damaged)
    offset = file_offset_in_iso(damaged, "/engine/vmlinuz")
    with open(damaged, "r+b") as handle:
        handle.seek(offset)
        handle.write(b"\0\0\0\0")
    other = tmp_path / "other.img"
    other.write_bytes(bytes(MIB))
    cases = [
        ((str(iso), stick.device, "--yes"), "not a USB or removable disk"),
        ((str(iso), "/dev/engine-usb-no-such-stick", "--yes"), "does not exist"),
        ((str(tmp_path / "missing.iso"), stick.device, "--yes"), "not found"),
        ((str(truncated), stick.device, "--yes"), "truncated"),
        ((str(damaged), stick.device, "--yes"), "engine/vmlinuz on damaged.iso does not match"),
        ((str(other), stick.device, "--yes"), "pass --force"),
        ((str(iso), stick.device), "pass --yes"),  # no terminal to confirm on
    ]
    for args, expected in cases:
        allow = () if expected == "not a USB or removable disk" else ("--allow-non-removable",)
        done = run("write", *args, *allow)
        assert done.returncode != 0, args
        assert expected in one_error_line(done), (args, done.stderr)
    assert sha(stick.backing) == before


AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def test_not_root_refused(iso: Path, loops) -> None:
    # A checkout under a private directory (mktemp -d is 0700) keeps the venv from every other
    # user; the refusal can only be seen where an unprivileged user can start the tool at all.
    reach = subprocess.run([*AS_NOBODY, ENGINE_USB, "--help"], capture_output=True, check=False)
    if reach.returncode != 0:
        pytest.skip(f"an unprivileged user cannot run {ENGINE_USB} (checkout not world-readable)")
    stick = loops(32 * MIB)
    before = sha(stick.backing)
    done = subprocess.run(
        [*AS_NOBODY, ENGINE_USB, "write"]
        + [str(iso), stick.device, "--yes", "--allow-non-removable"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "needs root" in one_error_line(done)
    assert sha(stick.backing) == before


@contextlib.contextmanager
def dying_stick(tmp_path: Path, size: int, good_bytes: int, head: bytes):
    """A loop device over a sparse file on a tmpfs that holds only good_bytes: writes past that
    fail with I/O errors, like a stick that dies (or is pulled out) in the middle of the write.
    Its first MiB is `head` (e.g. a bootable image's). Yields (device, backing file)."""
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={good_bytes}", "tmpfs", str(tiny)])
    backing = tiny / "dying.img"
    try:
        with open(backing, "wb") as handle:
            handle.write(head)
            handle.truncate(size)
        device = attach(backing, INTEGRATION)
        try:
            yield device, backing
        finally:
            detach(device)
    finally:
        subprocess.run(["umount", "--lazy", str(tiny)], check=False)


def test_three_sticks_in_parallel_one_dies(iso: Path, loops, tmp_path: Path) -> None:
    sticks = [loops(32 * MIB) for _ in range(2)]
    # The dying stick was a bootable Engine stick: its first MiB is an Engine ISO's (hybrid MBR).
    bootable = iso.read_bytes()[:MIB]
    assert bootable[510:512] == b"\x55\xaa"
    with dying_stick(tmp_path, 32 * MIB, 6 * MIB, bootable) as (dying, backing):
        done = run(
            "write",
            str(iso),
            sticks[0].device,
            dying,
            sticks[1].device,
            "--yes",
            "--allow-non-removable",
        )
        # The old first MiB is zeroed before the body is written and the new one is written
        # last, so the dead stick has neither: it cannot boot, nor look bootable.
        dead = backing.read_bytes()
        assert dead[:MIB] == bytes(MIB)
        assert dead[MIB : 2 * MIB] == iso.read_bytes()[MIB : 2 * MIB], "it died mid-body"
    assert done.returncode == 1, done.stdout + done.stderr
    table = done.stdout.splitlines()
    assert table[0].split()[:5] == ["DEVICE", "MODEL", "SERIAL", "SIZE", "RESULT"]
    rows = {line.split()[0]: line for line in table[1:4]}
    assert " ok " in rows[sticks[0].device] and " ok " in rows[sticks[1].device]
    assert "FAILED" in rows[dying]
    assert f"{dying}: {dying} failed while writing" in done.stdout
    for stick in sticks:
        run("verify", str(iso), stick.device, check_rc=0)


def test_closed_stdout_never_stops_the_write(iso: Path, loops) -> None:
    """`engine-usb write ... --json | head -1`: the stick is still written and verified."""
    stick = loops(32 * MIB)
    proc = subprocess.Popen(
        [ENGINE_USB, "write", str(iso), stick.device, "--yes", "--json"]
        + ["--allow-non-removable"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = proc.stdout.readline()
        proc.stdout.close()
        stderr = proc.communicate(timeout=120)[1]
    finally:
        proc.kill()
        proc.wait()
    assert json.loads(first)["phase"] == "checking"
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr and "Exception" not in stderr, stderr
    run("verify", str(iso), stick.device, check_rc=0)


def test_disk_holding_the_iso_refused(iso: Path, loops, tmp_path: Path) -> None:
    stick = loops(64 * MIB)
    mkfs = ["mkfs.ext4", "-q", "-E", "lazy_itable_init=0,lazy_journal_init=0", stick.device]
    subprocess.run(mkfs, check=True)
    mountpoint = tmp_path / "isos"
    mountpoint.mkdir()
    subprocess.run(["mount", stick.device, str(mountpoint)], check=True)
    try:
        shutil.copyfile(iso, mountpoint / "engine.iso")
        subprocess.run(["mount", "-o", "remount,ro", str(mountpoint)], check=True)
        before = sha(stick.backing)
        done = run(
            "write", str(mountpoint / "engine.iso"), stick.device, "--yes", "--allow-non-removable"
        )
        assert done.returncode == 3
        assert "the ISO file itself lives on it" in one_error_line(done)
        assert sha(stick.backing) == before
    finally:
        subprocess.run(["umount", str(mountpoint)], check=False)


def test_list_never_offers_a_loop_device(loops) -> None:
    stick = loops(8 * MIB)
    listed = json.loads(run("list", "--json", check_rc=0).stdout)
    assert stick.device not in [disk["path"] for disk in listed]
    assert run("list", check_rc=0).stdout.strip()
