"""The copy engine on plain files standing in for devices (O_DIRECT works on files; no root).

Faults are real where a file can make them real: a source that shrinks mid-copy, a target fd
that turns read-only mid-copy (dup2), a progress output that fails. Only the hasher's failure
is injected (hashlib does not fail by itself). Every failure must end the copy with one
CopyError within seconds and leave no engine thread behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import mmap
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine_installer.disks import blockcopy
from engine_installer.disks.blockcopy import CHUNK, CopyError, Mismatch, copy_image, verify_image

MIB = 1024 * 1024
SIZE = 9 * CHUNK + 3 * 512 + 100  # several chunks, the last one short and not block-aligned
TARGET = 12 * CHUNK  # the "device": a whole number of blocks


def pattern(size: int, seed: bytes) -> bytes:
    return hashlib.shake_256(seed).digest(size)


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]  # fmt: skip
_libc.mlock.argtypes = _libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]


@contextlib.contextmanager
def held_in_page_cache(fd: int, offset: int, length: int) -> Iterator[None]:
    """Read a file range into the page cache and keep it there (mlock of a shared mapping), so
    that other processes' memory pressure cannot evict it while a test relies on it being
    cached. Python's mmap has no mlock, hence ctypes. Without the privilege to lock (not root,
    a low RLIMIT_MEMLOCK) the range is read in and left to the page cache as it is."""
    address = _libc.mmap(None, length, mmap.PROT_READ, mmap.MAP_SHARED, fd, offset)
    if address in (None, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), "mmap of the test image failed")
    try:
        if _libc.mlock(address, length) != 0:
            os.preadv(fd, [bytearray(length)], offset)
        yield
    finally:
        _libc.munmap(address, length)  # also unlocks


def engine_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(("copy-", "verify-"))]


@pytest.fixture
def files(tmp_path: Path):
    """(image path, image fd, target path, target fd O_RDWR|O_DIRECT)."""
    image = tmp_path / "image"
    image.write_bytes(pattern(SIZE, b"image"))
    target = tmp_path / "target"
    target.write_bytes(pattern(TARGET, b"old"))
    try:
        target_fd = os.open(target, os.O_RDWR | os.O_DIRECT)
    except OSError as err:
        if err.errno == errno.EINVAL:
            pytest.skip("this filesystem does not support O_DIRECT")
        raise
    image_fd = os.open(image, os.O_RDONLY)
    yield image, image_fd, target, target_fd
    os.close(image_fd)
    os.close(target_fd)
    assert engine_threads() == [], "an engine thread outlived its copy"


def test_copy_hashes_pads_and_verifies_by_comparison(files) -> None:
    image, image_fd, target, target_fd = files
    seen: list[tuple[str, int, int]] = []
    copied = copy_image(
        image_fd, SIZE, target_fd, hash_image=True, report=lambda *e: seen.append(e)
    )
    data = image.read_bytes()
    assert copied.sha256 == hashlib.sha256(data).hexdigest()
    assert len(copied.checkpoints) == 10  # the hash state before every chunk
    assert copied.checkpoints[3].hexdigest() == hashlib.sha256(data[: 3 * CHUNK]).hexdigest()
    written = target.read_bytes()
    padded = blockcopy.align_up(SIZE, 512)
    assert written[:SIZE] == data
    assert written[SIZE:padded] == bytes(padded - SIZE), "the last block is padded with zeros"
    assert written[padded:] == pattern(TARGET, b"old")[padded:], "nothing else"
    writes = [done for phase, done, _ in seen if phase == "write"]
    assert writes[0] == 0 and writes[-1] == SIZE and writes == sorted(writes)
    assert [e[0] for e in seen][-2:] == ["sync", "sync"]
    checked = verify_image(target_fd, SIZE, source=image_fd, copied=copied)
    assert (checked.compared, checked.hashed) == (SIZE, 0)


def test_verify_hashes_what_the_page_cache_does_not_hold(files, monkeypatch) -> None:
    """The source's second half is dropped from the page cache: the check compares the first
    half, re-reads what it may, hashes the rest from the write pass's saved state, and still
    catches damage."""
    monkeypatch.setattr(blockcopy, "REREAD_LIMIT", 2 * MIB)
    image, image_fd, target, target_fd = files
    copied = copy_image(image_fd, SIZE, target_fd, hash_image=True)
    half = 5 * CHUNK
    fd = os.open(image, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)  # no read-ahead refilling the cache
        os.fsync(fd)
        os.posix_fadvise(fd, half, 0, os.POSIX_FADV_DONTNEED)
        try:
            os.preadv(fd, [bytearray(4096)], half, os.RWF_NOWAIT)
            pytest.skip("the page cache kept the dropped pages (or cannot tell)")
        except BlockingIOError:
            pass
        except OSError as err:
            if err.errno != errno.EOPNOTSUPP:
                raise
        with held_in_page_cache(fd, 0, half):  # whatever else the machine is doing
            checked = verify_image(target_fd, SIZE, source=fd, copied=copied)
            assert checked.hashed > 0 and checked.compared + checked.hashed == SIZE
            assert checked.compared == half or checked.compared == 0  # 0: no RWF_NOWAIT here
            # A few evicted pages are re-read and compared, not a reason to hash the rest.
            os.posix_fadvise(fd, half + MIB, MIB, os.POSIX_FADV_DONTNEED)
            rest = half + 2 * MIB
            with held_in_page_cache(fd, half, MIB), held_in_page_cache(fd, rest, SIZE - rest):
                checked = verify_image(target_fd, SIZE, source=fd, copied=copied)
            assert checked.hashed == 0 or checked.compared == 0, checked.method
        with open(target, "r+b") as handle:  # damage the part checked by hash
            handle.seek(SIZE - 10)
            handle.write(b"rot")
        os.posix_fadvise(fd, half, 0, os.POSIX_FADV_DONTNEED)
        with pytest.raises(Mismatch, match="SHA-256 differs"):
            verify_image(target_fd, SIZE, source=fd, copied=copied)
    finally:
        os.close(fd)


def test_verify_by_hash_alone_and_by_comparison_catch_one_byte(files) -> None:
    image, image_fd, target, target_fd = files
    copied = copy_image(image_fd, SIZE, target_fd, hash_image=True)
    assert verify_image(target_fd, SIZE, expected_sha256=copied.sha256).hashed == SIZE
    with open(target, "r+b") as handle:
        handle.seek(2 * CHUNK + 5000)
        handle.write(b"\xff")
    with pytest.raises(Mismatch, match="SHA-256 differs"):
        verify_image(target_fd, SIZE, expected_sha256=copied.sha256)
    with pytest.raises(Mismatch, match=f"first difference at byte {2 * CHUNK + 4096}"):
        verify_image(target_fd, SIZE, source=image_fd)


def test_unhashed_copy_from_the_mapping_writes_the_same_bytes(files) -> None:
    """Without hashing the body goes from the source's mapping; the result is the same."""
    image, image_fd, target, target_fd = files
    copy_image(image_fd, SIZE, target_fd)
    padded = blockcopy.align_up(SIZE, 512)
    written = target.read_bytes()
    assert written[:SIZE] == image.read_bytes()
    assert written[SIZE:padded] == bytes(padded - SIZE)
    assert written[padded:] == pattern(TARGET, b"old")[padded:]


def test_verify_digest_reports_the_targets_hash(files) -> None:
    image, image_fd, _target, target_fd = files
    copy_image(image_fd, SIZE, target_fd)
    checked = verify_image(target_fd, SIZE, source=image_fd, digest=True)
    assert checked.sha256 == hashlib.sha256(image.read_bytes()).hexdigest()


def test_usb_policy_head_zeroed_first_written_last_tail_cleared(files) -> None:
    image, image_fd, target, target_fd = files
    heads: list[bytes] = []

    def report(phase: str, done: int, _total: int) -> None:
        if phase == "write" and done:  # mid-body: the old boot area must be gone already
            heads.append(target.read_bytes()[: blockcopy.HEAD])

    copy_image(image_fd, SIZE, target_fd, head=blockcopy.HEAD, clear_tail=MIB, report=report)
    assert heads and all(head == bytes(blockcopy.HEAD) for head in heads)
    written = target.read_bytes()
    assert written[:SIZE] == image.read_bytes()
    assert written[-MIB:] == bytes(MIB)
    with open(target, "r+b") as handle:
        handle.seek(3 * MIB)
        handle.write(b"rot")
    with pytest.raises(Mismatch):
        verify_image(target_fd, SIZE, source=image_fd, head=blockcopy.HEAD)
    assert target.read_bytes()[: blockcopy.HEAD] == bytes(blockcopy.HEAD)


def test_write_cut_midway_leaves_no_old_head(files) -> None:
    """A copy that stops mid-body (here: its progress output fails) leaves the head zeroed."""
    _image, image_fd, target, target_fd = files

    def report(phase: str, done: int, _total: int) -> None:
        if phase == "write" and done >= 2 * CHUNK:
            raise RuntimeError("display gone")

    with pytest.raises(CopyError, match="display gone") as caught:
        copy_image(image_fd, SIZE, target_fd, head=blockcopy.HEAD, report=report)
    assert caught.value.side == "progress"
    assert target.read_bytes()[: blockcopy.HEAD] == bytes(blockcopy.HEAD)


def _timed(call) -> tuple[BaseException, float]:
    started = time.monotonic()
    with pytest.raises(CopyError) as caught:
        call()
    return caught.value, time.monotonic() - started


def test_target_failing_midway_stops_every_thread(files) -> None:
    """The target turns unwritable mid-copy while the reader has filled the pool and waits
    for a free buffer: the copy must end with the target's error, not hang."""
    _image, image_fd, target, target_fd = files
    readonly = os.open(target, os.O_RDONLY)

    def report(phase: str, done: int, _total: int) -> None:
        if phase == "write" and done == 2 * CHUNK:
            time.sleep(0.2)  # let the reader fill the whole pool first
            os.dup2(readonly, target_fd)

    try:
        err, spent = _timed(
            lambda: copy_image(image_fd, SIZE, target_fd, hash_image=True, report=report)
        )
    finally:
        os.close(readonly)
    assert err.side == "target" and err.offset == 2 * CHUNK
    assert spent < 5


@pytest.mark.parametrize("hashed", [True, False], ids=["read-and-hashed", "mapped"])
def test_source_shrinking_midway_is_a_source_error(files, hashed: bool) -> None:
    image, image_fd, _target, target_fd = files

    def report(phase: str, done: int, _total: int) -> None:
        if phase == "write" and done == CHUNK:
            os.truncate(image, 8 * CHUNK)

    err, spent = _timed(
        lambda: copy_image(image_fd, SIZE, target_fd, hash_image=hashed, report=report)
    )
    assert err.side == "source" and ("ended early" in str(err) or "cannot be read" in str(err))
    assert err.offset >= CHUNK and spent < 5


def test_hasher_failing_stops_the_copy(files, monkeypatch) -> None:
    _image, image_fd, _target, target_fd = files

    class Failing:
        calls = 0

        def update(self, _data) -> None:
            Failing.calls += 1
            if Failing.calls == 3:
                raise MemoryError("hasher out of memory")

        def copy(self):
            return self

    monkeypatch.setattr(blockcopy.hashlib, "sha256", Failing)
    err, spent = _timed(lambda: copy_image(image_fd, SIZE, target_fd, hash_image=True))
    assert err.side == "internal" and "hasher out of memory" in str(err)
    assert spent < 5


def test_verify_target_failing_stops_every_thread(files) -> None:
    _image, image_fd, target, target_fd = files
    copy_image(image_fd, SIZE, target_fd)
    writeonly = os.open(target, os.O_WRONLY)

    def report(phase: str, done: int, _total: int) -> None:
        if phase == "verify" and done == CHUNK:
            os.dup2(writeonly, target_fd)

    try:
        err, spent = _timed(
            lambda: verify_image(target_fd, SIZE, source=image_fd, digest=True, report=report)
        )
    finally:
        os.close(writeonly)
    assert err.side == "target" and spent < 5
