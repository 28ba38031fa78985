"""Write the slot image block for block into a slot partition, then verify it by reading back.

Hand-written rather than dd: we hash while writing (one pass over the source) and then read
back exactly the image size with O_DIRECT (bypassing the page cache, so we verify what the
device holds) and compare against the manifest SHA-256. A reader thread feeds a bounded queue
(the bmaptool pattern) so source reads and hashing overlap the device writes.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import queue
import threading

from engine_installer.base.errors import UserError
from engine_installer.base.progress import ProgressCallback, ProgressEvent, ignore_progress
from engine_installer.ondisk.payload import Artifact

BLOCK = 4 * 1024 * 1024  # 4 MiB: a multiple of every logical sector size
QUEUE_DEPTH = 4


def _aligned_buffer(size: int) -> mmap.mmap:
    # Anonymous mmap is page aligned, which satisfies O_DIRECT's buffer alignment.
    return mmap.mmap(-1, size)


def _partition_size(partition: str) -> int:
    fd = os.open(partition, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def _round_up(value: int, unit: int) -> int:
    return (value + unit - 1) // unit * unit


def write_slot(
    image: Artifact,
    partition: str,
    progress: ProgressCallback = ignore_progress,
    sector_size: int = 512,
) -> None:
    """Copy image into partition with O_DIRECT; UserError if the source changes under us."""
    total = image.size
    if _round_up(total, sector_size) > _partition_size(partition):
        raise UserError(
            f"slot image ({total} bytes) does not fit {partition}: rebuild the payload with a "
            "smaller image or reinstall to get the current slot size"
        )
    buffers: queue.Queue = queue.Queue(maxsize=QUEUE_DEPTH)
    free: queue.Queue = queue.Queue()
    for _ in range(QUEUE_DEPTH + 1):
        free.put(_aligned_buffer(BLOCK))
    digest = hashlib.sha256()
    failure: list[BaseException] = []

    def reader() -> None:
        try:
            with open(image.path, "rb", buffering=0) as source:
                while True:
                    buf = free.get()
                    length = source.readinto(buf)
                    if not length:
                        buffers.put(None)
                        return
                    # hashlib releases the GIL on big buffers: hashing overlaps the writes.
                    digest.update(memoryview(buf)[:length])
                    buffers.put((buf, length))
        except BaseException as err:  # noqa: BLE001 - handed to the writer thread
            failure.append(err)
            buffers.put(None)

    thread = threading.Thread(target=reader, name="slot-reader", daemon=True)
    thread.start()
    done = 0
    fd = os.open(partition, os.O_WRONLY | os.O_DIRECT)
    try:
        progress(ProgressEvent("write-slot", 0, total, f"writing {image.path.name}"))
        while (item := buffers.get()) is not None:
            buf, length = item
            padded = _round_up(length, sector_size)
            if padded != length:
                # The final short block: O_DIRECT needs whole sectors; pad with zeros.
                buf[length:padded] = bytes(padded - length)
            written = os.pwrite(fd, memoryview(buf)[:padded], done)
            if written != padded:
                raise UserError(f"short write to {partition} at byte {done}: check the disk")
            done += length
            free.put(buf)
            progress(ProgressEvent("write-slot", done, total))
        os.fsync(fd)
    except OSError as err:
        raise UserError(f"writing {partition} failed ({err.strerror}): check the disk") from None
    finally:
        os.close(fd)
        thread.join()
    if failure:
        err = failure[0]
        raise UserError(f"reading {image.path} failed ({err}): the medium is damaged, rewrite it")
    if done != total or digest.hexdigest() != image.sha256:
        raise UserError(
            f"{image.path} changed or read wrongly while writing (hash mismatch): the medium "
            "is damaged, rewrite it"
        )


def verify_slot(
    image: Artifact,
    partition: str,
    progress: ProgressCallback = ignore_progress,
    sector_size: int = 512,
) -> None:
    """Read back exactly image.size bytes with O_DIRECT and compare with the manifest hash."""
    total = image.size
    digest = hashlib.sha256()
    buf = _aligned_buffer(BLOCK)
    done = 0
    progress(ProgressEvent("verify-slot", 0, total, f"verifying {partition}"))
    fd = os.open(partition, os.O_RDONLY | os.O_DIRECT)
    try:
        while done < total:
            want = min(BLOCK, _round_up(total - done, sector_size))
            view = memoryview(buf)[:want]
            got = os.preadv(fd, [view], done)
            if got <= 0:
                break
            digest.update(view[: min(got, total - done)])
            done += min(got, total - done)
            progress(ProgressEvent("verify-slot", done, total))
    except OSError as err:
        raise UserError(
            f"reading back {partition} failed ({err.strerror}): check the disk"
        ) from None
    finally:
        os.close(fd)
    if done != total or digest.hexdigest() != image.sha256:
        raise UserError(
            f"slot {partition} does not read back as written (SHA-256 mismatch): the disk is "
            "failing or was changed; nothing was switched, replace the disk or retry"
        )
