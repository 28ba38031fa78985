"""The writer on a plain file standing in for a stick (O_DIRECT works on files too; no root).

The progress callback runs between the stages, which lets a test look at, or damage, the
"stick" at exactly the moment that matters: while the body is written, before the first MiB
is written, or after the write but before the read-back.
"""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from engine_installer.usb import writer
from engine_installer.usb.writer import StickError, StickResult

MIB = 1024 * 1024


def pattern(size: int, seed: bytes) -> bytes:
    return hashlib.shake_256(seed).digest(size)


@pytest.fixture
def setup(tmp_path: Path):
    image = tmp_path / "image.iso"
    image.write_bytes(pattern(9 * MIB + 2048, b"image"))  # not a multiple of 4 MiB
    stick = tmp_path / "stick.img"
    stick.write_bytes(pattern(16 * MIB, b"old"))
    try:
        fd = os.open(stick, os.O_RDWR | os.O_DIRECT)
    except OSError as err:
        if err.errno == errno.EINVAL:
            pytest.skip("this filesystem does not support O_DIRECT")
        raise
    try:
        yield image, stick, fd
    finally:
        os.close(fd)


def test_write_verify_layout_and_phases(setup) -> None:
    image, stick, fd = setup
    seen: list[tuple[str, int, int]] = []
    head_while_writing: list[bytes] = []
    head_before_sync: list[bytes] = []

    def report(phase: str, done: int, total: int) -> None:
        seen.append((phase, done, total))
        if phase == "writing" and done:  # mid-body
            head_while_writing.append(stick.read_bytes()[:MIB])
        if (phase, done) == ("syncing", 0):  # everything but the head is on the stick
            head_before_sync.append(stick.read_bytes()[:MIB])

    size = image.stat().st_size
    result = StickResult(str(stick), image_bytes=size)
    writer.write_and_verify(image, size, fd, result, report)
    assert result.ok and result.write_seconds > 0 and result.verify_seconds > 0
    data = stick.read_bytes()
    assert data[:size] == image.read_bytes()
    assert data[-MIB:] == bytes(MIB)
    assert data[size : 15 * MIB] == pattern(16 * MIB, b"old")[size : 15 * MIB]
    # The old boot area is zeroed before the body is written, and the new one goes last.
    assert head_while_writing and set(head_while_writing) == {bytes(MIB)}
    assert head_before_sync == [bytes(MIB)], "the first MiB goes last"
    phases = [phase for phase, _done, _total in seen]
    assert phases.index("syncing") > max(i for i, p in enumerate(phases) if p == "writing")
    assert phases[-1] == "verifying" and seen[-1][1] == size
    writing = [done for phase, done, _ in seen if phase == "writing"]
    assert writing == sorted(writing) and writing[-1] == size


def test_write_cut_midway_leaves_the_stick_unbootable(setup) -> None:
    """The write stops half-way (here the progress output fails, as a killed or unplugged
    writer would stop it): the stick's old first MiB must already be gone."""
    image, stick, fd = setup

    def report(phase: str, done: int, total: int) -> None:
        if phase == "writing" and done >= 4 * MIB:
            raise RuntimeError("cut")

    size = image.stat().st_size
    result = StickResult(str(stick), image_bytes=size)
    with pytest.raises(StickError, match="failed while writing"):
        writer.write_and_verify(image, size, fd, result, report)
    assert not result.ok
    assert stick.read_bytes()[:MIB] == bytes(MIB)


def test_damage_after_write_is_caught_and_head_zeroed(setup) -> None:
    image, stick, fd = setup

    def report(phase: str, done: int, total: int) -> None:
        if (phase, done, total) == ("syncing", 1, 1):  # written and synced; damage it now
            with open(stick, "r+b") as handle:
                handle.seek(5 * MIB + 123)
                handle.write(b"\0rot")
                handle.flush()
                os.fsync(handle.fileno())

    size = image.stat().st_size
    result = StickResult(str(stick), image_bytes=size)
    with pytest.raises(StickError, match="does not read back what was written"):
        writer.write_and_verify(image, size, fd, result, report)
    assert not result.ok
    assert stick.read_bytes()[:MIB] == bytes(MIB), "a stick that failed must not boot"
