"""Slot images: the payload's root image written into a slot partition, then read back.

Both passes run on the copy engine (blockcopy). The write pass hashes the image as it writes it
and checks the manifest's SHA-256 at the end: that is the payload's full check, there is no
separate pass over the image before. The read-back compares the slot with the image while the
image is in the page cache and hashes from the first block that is not, resuming from the
write pass's hash state. Every failure is one UserError naming the problem and its fix; the
runner adds what the disk holds after it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from engine_installer.base.errors import UserError
from engine_installer.base.progress import ProgressCallback, ProgressEvent, ignore_progress
from engine_installer.disks.blockcopy import (
    Copied,
    CopyError,
    Mismatch,
    align_up,
    copy_image,
    verify_image,
)
from engine_installer.ondisk.payload import Artifact

log = logging.getLogger("engine_installer")


def _open(path: str | Path, flags: int, what: str) -> int:
    try:
        return os.open(path, flags | os.O_CLOEXEC)
    except OSError as err:
        raise UserError(f"{what} {path} cannot be opened ({err.strerror}): {_FIX[what]}") from None


_FIX = {
    "slot image": "the medium is incomplete or damaged, rewrite it",
    "slot partition": "check the disk",
}


def _events(phase: str, total: int, progress: ProgressCallback):
    def report(step: str, done: int, _total: int) -> None:
        if step != "sync":  # the engine's fsync is part of this phase
            progress(ProgressEvent(phase, done, total))

    return report


def _failed(err: CopyError, image: Artifact, partition: str, doing: str) -> str:
    if err.side == "source":
        return (
            f"reading {image.path} failed at byte {err.offset} ({err.reason}) while {doing} "
            f"{partition}: the medium is damaged, rewrite it"
        )
    if err.side == "target":
        return (
            f"{doing} {partition} failed at byte {err.offset} ({err.reason}): the disk is "
            "failing or was removed, check or replace it"
        )
    return f"{doing} {partition} stopped ({err.side}: {err.reason}): report a bug"


def write_slot(
    image: Artifact,
    partition: str,
    progress: ProgressCallback = ignore_progress,
    sector_size: int = 512,
) -> Copied:
    """Copy image into partition with O_DIRECT, hashing it on the way; UserError if it does
    not match the manifest (a damaged or changed medium) or the copy fails. The runner adds
    what the disk holds after the failure."""
    total = image.size
    target = _open(partition, os.O_WRONLY | os.O_DIRECT, "slot partition")
    try:
        room = os.lseek(target, 0, os.SEEK_END)
        if align_up(total, sector_size) > room:
            raise UserError(
                f"slot image ({total} bytes) does not fit {partition}: rebuild the payload with "
                "a smaller image or reinstall to get the current slot size"
            )
        source = _open(image.path, os.O_RDONLY, "slot image")
        try:
            progress(ProgressEvent("write-slot", 0, total, f"writing {image.path.name}"))
            copied = copy_image(
                source,
                total,
                target,
                block=sector_size,
                hash_image=True,
                report=_events("write-slot", total, progress),
                source_offset=image.offset,
            )
        except CopyError as err:
            raise UserError(_failed(err, image, partition, "writing")) from err
        finally:
            os.close(source)
    finally:
        os.close(target)
    if copied.sha256 != image.sha256:
        raise UserError(
            f"{image.path} changed or read wrongly while writing {partition} (it does not match "
            "the manifest's SHA-256): the medium is damaged, rewrite it"
        )
    return copied


def verify_slot(
    image: Artifact,
    partition: str,
    progress: ProgressCallback = ignore_progress,
    sector_size: int = 512,
    *,
    copied: Copied | None = None,
) -> None:
    """Read back exactly image.size bytes with O_DIRECT and check them against the image
    (byte for byte while it is cached, else by the manifest hash); UserError if they differ.
    copied: write_slot's result, so the check can switch to hashing at any block."""
    total = image.size
    progress(ProgressEvent("verify-slot", 0, total, f"verifying {partition}"))
    target = _open(partition, os.O_RDONLY | os.O_DIRECT, "slot partition")
    try:
        try:
            source: int | None = os.open(image.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            source = None  # the medium is gone: the manifest hash alone can still check
        try:
            checked = verify_image(
                target,
                total,
                block=sector_size,
                source=source,
                copied=copied,
                expected_sha256=image.sha256,
                report=_events("verify-slot", total, progress),
                source_offset=image.offset,
            )
        finally:
            if source is not None:
                os.close(source)
    except Mismatch as err:
        raise UserError(
            f"slot {partition} does not read back as written ({err}): the disk is failing or "
            "was changed, replace it or retry"
        ) from None
    except CopyError as err:
        raise UserError(_failed(err, image, partition, "reading back")) from err
    finally:
        os.close(target)
    log.info("slot %s verified (%s)", partition, checked.method)
