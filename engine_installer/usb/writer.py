"""Copy an image onto whole block devices and read it back, bmaptool-style.

One reader thread per copy fills a small pool of aligned 4 MiB buffers (mmap gives page-aligned
memory, which O_DIRECT needs) and hashes as it reads; the device thread writes them with O_DIRECT
so the page cache neither slows the copy nor hides a bad stick. The first MiB (partition table,
boot code) is written last, after everything else is on the stick and synced, so a stick pulled
mid-write never looks bootable. Read-back uses O_DIRECT too: the page cache would otherwise
return the data we wrote instead of what the stick holds.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import mmap
import os
import queue
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from engine_installer.base.errors import UserError

CHUNK = 4 * 1024 * 1024
HEAD = 1024 * 1024  # written last
TAIL = 1024 * 1024  # cleared: a stale backup GPT there confuses firmware and partitioners
DEPTH = 4  # buffers in flight per copy: enough to overlap reading, hashing and writing
BLKSSZGET = 0x1268
BLKRRPART = 0x125F

Report = Callable[[str, int, int], None]  # phase, done, total


class StickError(UserError):
    """One stick failed; the message is one line naming the stick, the problem and the fix."""


def align_up(value: int, block: int) -> int:
    return (value + block - 1) // block * block


def logical_block_size(fd: int) -> int:
    try:
        raw = fcntl.ioctl(fd, BLKSSZGET, struct.pack("i", 0))
        return max(512, struct.unpack("i", raw)[0])
    except OSError:
        return 512


def device_size(fd: int) -> int:
    return os.lseek(fd, 0, os.SEEK_END)


class _Reader(threading.Thread):
    """Reads `size` bytes from fd into pooled aligned buffers; optionally hashes as it reads.

    Items on `full` are (offset, length, buffer); None ends the stream, an exception is
    re-raised by the consumer. The consumer hands buffers back on `free` (bounded memory)."""

    def __init__(self, fd: int, size: int, block: int, hash_here: bool) -> None:
        super().__init__(daemon=True)
        self.fd, self.size, self.block, self.hash_here = fd, size, block, hash_here
        self.digest = hashlib.sha256()
        self.free: queue.Queue[mmap.mmap] = queue.Queue()
        self.full: queue.Queue[tuple[int, int, mmap.mmap] | BaseException | None] = queue.Queue()
        self.stop = threading.Event()
        for _ in range(DEPTH):
            self.free.put(mmap.mmap(-1, CHUNK))

    def run(self) -> None:
        try:
            offset = 0
            while offset < self.size:
                buf = self._take()
                if buf is None:
                    return
                length = min(CHUNK, self.size - offset)
                view = memoryview(buf)
                got = 0
                want = align_up(length, self.block)  # O_DIRECT reads whole blocks
                while got < length:
                    count = os.preadv(self.fd, [view[got:want]], offset + got)
                    if count == 0:
                        raise EOFError(f"ended after {offset + got} of {self.size} bytes")
                    got += count
                if self.hash_here:
                    self.digest.update(view[:length])
                view.release()
                self.full.put((offset, length, buf))
                offset += length
            self.full.put(None)
        except BaseException as err:  # noqa: BLE001 - handed to the consumer thread
            self.full.put(err)

    def _take(self) -> mmap.mmap | None:
        while not self.stop.is_set():
            with contextlib.suppress(queue.Empty):
                return self.free.get(timeout=0.2)
        return None

    def items(self):
        """Yield (offset, length, buffer) until the end; the caller must give buffers back."""
        while True:
            item = self.full.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self.stop.set()
        self.join()


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)


def write_image(image_fd: int, size: int, fd: int, report: Report) -> str:
    """Write `size` bytes of the image at the start of the device (O_DIRECT fd); first MiB
    last, last MiB of the device cleared, synced. Returns the image's SHA-256.

    Three stages overlap: the reader thread fills buffers, a hasher thread hashes each buffer
    (in read order) while this thread writes the same buffer, so a fast device is limited by
    the slowest stage (SHA-256, ~2 GB/s on one core) rather than by their sum."""
    block = logical_block_size(fd)
    dev_size = device_size(fd)
    head = mmap.mmap(-1, HEAD)
    head_len = 0
    digest = hashlib.sha256()
    reader = _Reader(image_fd, size, 1, hash_here=False)
    reader.start()
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hash") as hasher:
            for offset, length, buf in reader.items():
                view = memoryview(buf)
                hashed = hasher.submit(digest.update, view[:length])
                padded = align_up(length, block)
                if padded > length:  # the image's end is not block-aligned: pad with zeros
                    view[length:padded] = bytes(padded - length)
                start = 0
                if offset < HEAD:  # CHUNK >= HEAD, so this is the first chunk only
                    head_len = align_up(min(HEAD, length), block)
                    head[:head_len] = view[:head_len]
                    start = head_len
                try:
                    if start < padded:
                        _pwrite_all(fd, view[start:padded], offset + start)
                finally:
                    hashed.result()  # the buffer is reused only once hashed and written
                view.release()
                reader.free.put(buf)
                report("writing", offset + length, size)
    finally:
        reader.close()
    report("syncing", 0, 1)
    tail_start = max(align_up(size, block), dev_size - TAIL)
    if tail_start < dev_size:
        zeros = mmap.mmap(-1, align_up(dev_size - tail_start, block))
        _pwrite_all(fd, memoryview(zeros)[: dev_size - tail_start], tail_start)
    os.fsync(fd)
    if head_len:
        _pwrite_all(fd, memoryview(head)[:head_len], 0)
    os.fsync(fd)
    report("syncing", 1, 1)
    return digest.hexdigest()


def read_digest(fd: int, size: int, report: Report | None, phase: str = "verifying") -> str:
    """SHA-256 of the first `size` bytes of fd. The reader thread reads (O_DIRECT if fd is),
    this thread hashes, so reading and hashing overlap."""
    block = logical_block_size(fd) if _is_block_device(fd) else 1
    reader = _Reader(fd, size, block, hash_here=False)
    digest = hashlib.sha256()
    reader.start()
    try:
        for offset, length, buf in reader.items():
            view = memoryview(buf)
            digest.update(view[:length])
            view.release()
            reader.free.put(buf)
            if report:
                report(phase, offset + length, size)
    finally:
        reader.close()
    return digest.hexdigest()


def zero_head(fd: int) -> None:
    """Make a stick that failed verification unbootable rather than half-valid."""
    _pwrite_all(fd, memoryview(mmap.mmap(-1, HEAD)), 0)
    os.fsync(fd)


def reread_partitions(fd: int) -> None:
    """Ask the kernel to show the new partitions (sdb1...); not all devices support it."""
    with contextlib.suppress(OSError):
        fcntl.ioctl(fd, BLKRRPART)


def _is_block_device(fd: int) -> bool:
    import stat

    return stat.S_ISBLK(os.fstat(fd).st_mode)


def open_device(path: str, write: bool) -> int:
    """O_DIRECT; for writing also O_EXCL, which fails if anything else has the disk open
    exclusively (a mounted filesystem, LVM, RAID, another writer)."""
    flags = os.O_DIRECT | os.O_CLOEXEC
    flags |= (os.O_RDWR | os.O_EXCL) if write else os.O_RDONLY
    try:
        return os.open(path, flags)
    except OSError as err:
        if err.errno == errno.EBUSY:
            raise StickError(
                f"{path} is busy (mounted, part of LVM/RAID, or open in another program): "
                "unmount or close it and try again"
            ) from None
        if err.errno in (errno.EACCES, errno.EPERM):
            raise StickError(f"{path}: permission denied: run engine-usb as root") from None
        if err.errno == errno.EROFS:
            raise StickError(
                f"{path} is read-only: check the stick's write-protect switch"
            ) from None
        raise StickError(f"{path} cannot be opened ({err.strerror})") from None


@dataclass
class StickResult:
    device: str
    model: str = ""
    serial: str = ""
    size: int = 0
    ok: bool = False
    message: str = ""
    write_seconds: float = 0.0
    verify_seconds: float = 0.0
    image_bytes: int = 0

    @property
    def write_mbps(self) -> float:
        return self.image_bytes / self.write_seconds / 1e6 if self.write_seconds else 0.0

    @property
    def verify_mbps(self) -> float:
        return self.image_bytes / self.verify_seconds / 1e6 if self.verify_seconds else 0.0


def _describe_io_error(device: str, phase: str, err: OSError) -> str:
    hint = "the stick was pulled out or is faulty; try another stick"
    return f"{device} failed while {phase} ({err.strerror or err}): {hint}"


def write_and_verify(image: Path, size: int, fd: int, result: StickResult, report: Report) -> None:
    """The whole job for one stick, filling result; raises StickError on failure."""
    device = result.device
    phase = "writing"

    def tracked(name: str, done: int, total: int) -> None:
        nonlocal phase
        phase = name
        report(name, done, total)

    try:
        image_fd = os.open(image, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise StickError(f"{image} cannot be read ({err.strerror}): check the ISO") from None
    try:
        os.posix_fadvise(image_fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        started = time.monotonic()
        try:
            expected = write_image(image_fd, size, fd, tracked)
        except EOFError:
            raise StickError(f"{image} shrank while it was being written: check the ISO") from None
        except OSError as err:
            raise StickError(_describe_io_error(device, phase, err)) from None
        result.write_seconds = time.monotonic() - started
    finally:
        os.close(image_fd)
    started = time.monotonic()
    try:
        actual = read_digest(fd, size, tracked)
    except (OSError, EOFError) as err:
        raise StickError(_describe_io_error(device, "verifying", OSError(str(err)))) from None
    result.verify_seconds = time.monotonic() - started
    if actual != expected:
        with contextlib.suppress(OSError):
            zero_head(fd)
        raise StickError(
            f"{device} does not read back what was written (verification failed): the stick is "
            "faulty; its first MiB was zeroed so it cannot boot half-written, use another stick"
        )
    reread_partitions(fd)
    result.ok = True
    result.message = "written and verified"
