"""The one copy engine: images onto block devices (slot partitions, USB sticks) and read-back.

The bmaptool pattern (BmapCopy): a reader thread fills a fixed pool of page-aligned buffers
(anonymous mmap; O_DIRECT needs aligned memory) and hands them over queues; the pool bounds the
memory in flight. Errors travel on the queues too: the first failure in any thread (reader,
hasher, writer, progress output) stops every thread, so no thread is ever left blocked on a
queue and the caller gets one CopyError within one block's time.

copy_image() writes with O_DIRECT (the page cache neither slows the copy nor hides a bad disk)
and can hash exactly what it writes in a hasher thread, off the write path (hashlib releases
the GIL). A copy that needs no hash (a USB stick: its read-back compares bytes) skips the
reader: O_DIRECT writes straight from the source's mapping, so the kernel hands the source's
page-cache pages to the device and no byte passes through this process.
verify_image() reads the target back with O_DIRECT and checks it the fastest strict way:
byte for byte against the source while the source is in the page cache (memcmp runs at memory
speed, SHA-256 at ~2 GB/s), and by SHA-256 from the first block that is not cached (beyond a
few MiB it may re-read), resuming from the hash state the write pass saved at that block, so
a slow medium (a DVD) is never read twice in full and every byte is checked once.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import mmap
import os
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from engine_installer.base.errors import UserError

MiB = 1024 * 1024
CHUNK = 4 * MiB  # one I/O: dd's bs=4M, and a multiple of every logical block size
DEPTH = 6  # buffers per pool: enough to keep reader, writer and hasher all busy
PIECE = MiB  # source reads for comparison: small enough to stay in the CPU cache
REREAD_LIMIT = 16 * MiB  # source bytes a verify may re-read from the medium (see _Rereads)
HEAD = MiB  # the USB policy's boot area: partition tables, boot code, ISO volume descriptors
JOIN_SECONDS = 10.0  # a thread stuck in a syscall on a dead device is abandoned after this

Report = Callable[[str, int, int], None]  # (phase: "write" | "sync" | "verify", done, total)


def _quiet(_phase: str, _done: int, _total: int) -> None:
    pass


class CopyError(UserError):
    """The copy stopped. side: "source" (the image), "target" (the device), "progress" (the
    progress output failed) or "internal" (a bug). Callers word it for their user."""

    def __init__(self, side: str, offset: int, reason: str) -> None:
        super().__init__(f"{side} failed at byte {offset} ({reason})")
        self.side, self.offset, self.reason = side, offset, reason


class Mismatch(UserError):
    """The target does not read back as written; offset is the first bad 4 KiB block when the
    check was a direct comparison, -1 when it was by hash."""

    def __init__(self, offset: int) -> None:
        super().__init__(f"first difference at byte {offset}" if offset >= 0 else "SHA-256 differs")
        self.offset = offset


@dataclass
class Copied:
    """What copy_image wrote: its SHA-256 (when hashed) and the hash state at every CHUNK
    boundary, which lets verify_image switch from comparing to hashing at any block."""

    size: int
    sha256: str = ""
    checkpoints: list[Any] = field(default_factory=list, repr=False)


@dataclass
class Verified:
    compared: int = 0  # bytes checked byte for byte against the source
    hashed: int = 0  # bytes checked by SHA-256
    sha256: str = ""  # with digest=True: the SHA-256 of what the target holds

    @property
    def method(self) -> str:
        if self.compared and self.hashed:
            return f"compared {self.compared} bytes, hashed {self.hashed}"
        return "hash" if self.hashed else "direct comparison"


def align_up(value: int, block: int) -> int:
    return (value + block - 1) // block * block


# --- buffers and threads ---------------------------------------------------------------------

# Python compares two buffers item by item (memoryview ==, ~0.6 GB/s) or after copying them to
# bytes; libc's memcmp runs at memory speed and ctypes releases the GIL while it runs.
_memcmp = ctypes.CDLL(None, use_errno=True).memcmp
_memcmp.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
_memcmp.restype = ctypes.c_int


class _Buffer:
    """A page-aligned buffer (anonymous mmap) with its address for memcmp."""

    def __init__(self, size: int = CHUNK) -> None:
        self.mem = mmap.mmap(-1, size)
        self.view = memoryview(self.mem)
        self._anchor = ctypes.c_char.from_buffer(self.mem)  # keeps the address valid
        self.address = ctypes.addressof(self._anchor)


def _first_difference(a: _Buffer, a_start: int, b: _Buffer, length: int) -> int:
    """Offset of the first differing 4 KiB block of a[a_start:] and b (for the message)."""
    step = 4096
    for start in range(0, length, step):
        if _memcmp(a.address + a_start + start, b.address + start, min(step, length - start)):
            return start
    return length


class _Stopped(Exception):
    """Raised inside a thread's wait once the pipeline has stopped."""


_STOP = object()
_END = object()


class _Pipeline:
    """Threads joined by queues; the first failure anywhere stops all of them.

    Every wait is a queue get; stop() puts a stop mark on every queue, so a stop wakes every
    waiter at once (no polling), and the pool of buffers bounds what can be in flight."""

    def __init__(self) -> None:
        self.failure: BaseException | None = None
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._queues: list[queue.SimpleQueue] = []
        self._threads: list[threading.Thread] = []

    def queue(self) -> queue.SimpleQueue:
        made: queue.SimpleQueue = queue.SimpleQueue()
        self._queues.append(made)
        return made

    def pool(self, count: int = DEPTH) -> queue.SimpleQueue:
        free = self.queue()
        for _ in range(count):
            free.put(_Buffer())
        return free

    def spawn(self, name: str, target: Callable[[], None]) -> None:
        def run() -> None:
            try:
                target()
            except _Stopped:
                pass
            except BaseException as err:  # noqa: BLE001 - handed to the caller's thread
                self.fail(err)

        thread = threading.Thread(target=run, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def fail(self, err: BaseException) -> None:
        with self._lock:
            if self.failure is None:
                self.failure = err
        self.stop()

    def stop(self) -> None:
        with self._lock:
            if self._stopped.is_set():
                return
            self._stopped.set()
        for waiting in self._queues:
            waiting.put(_STOP)

    def get(self, source: queue.SimpleQueue) -> Any:
        item = source.get()
        if item is _STOP:
            source.put(_STOP)  # for anyone else waiting on it
            raise _Stopped
        return item

    def close(self) -> None:
        self.stop()
        for thread in self._threads:
            thread.join(JOIN_SECONDS)

    def raise_failure(self) -> None:
        if self.failure is not None:
            raise _as_copy_error(self.failure)


def _as_copy_error(err: BaseException) -> BaseException:
    if isinstance(err, CopyError | Mismatch) or not isinstance(err, Exception):
        return err  # KeyboardInterrupt, SystemExit: not ours to reword
    wrapped = CopyError("internal", 0, f"{type(err).__name__}: {err}")
    wrapped.__cause__ = err
    return wrapped


def _os_reason(err: OSError) -> str:
    return err.strerror or str(err)


def _read_exactly(fd: int, buf: _Buffer, length: int, offset: int, side: str) -> None:
    """Fill buf[:length] from offset (length rounded up to the block for O_DIRECT by the
    caller); a short source is an error, not a silent end."""
    got = 0
    while got < length:
        try:
            count = os.preadv(fd, [buf.view[got:length]], offset + got)
        except OSError as err:
            raise CopyError(side, offset + got, _os_reason(err)) from err
        if count == 0:
            raise CopyError(side, offset + got, "it ended early")
        got += count


def _reader(
    pipe: _Pipeline,
    fd: int,
    size: int,
    free: queue.SimpleQueue,
    full: queue.SimpleQueue,
    side: str,
    block: int = 1,
    base: int = 0,
) -> Callable[[], None]:
    """Read [base, base + size) of fd into pooled buffers, in order; items (offset, length,
    buffer) with offsets from base (an image may be a byte range of an ISO read in place)."""

    def run() -> None:
        for offset in range(0, size, CHUNK):
            buf = pipe.get(free)
            length = min(CHUNK, size - offset)
            _read_exactly(fd, buf, align_up(length, block), base + offset, side)
            full.put((offset, length, buf))
        full.put(_END)

    return run


def _hasher(
    pipe: _Pipeline,
    todo: queue.SimpleQueue,
    free: queue.SimpleQueue,
    digest: Any,
    checkpoints: list[Any] | None,
    done: queue.SimpleQueue,
) -> Callable[[], None]:
    """Hash buffers in order (each byte once), saving the state at every CHUNK boundary."""

    def run() -> None:
        while (item := pipe.get(todo)) is not _END:
            _offset, length, buf = item
            if checkpoints is not None:
                checkpoints.append(digest.copy())
            digest.update(buf.view[:length])
            free.put(buf)
        done.put(digest.hexdigest())

    return run


def _wait(pipe: _Pipeline, result: queue.SimpleQueue) -> Any:
    """One item from a worker; its failure instead if the pipeline stopped."""
    try:
        return pipe.get(result)
    except _Stopped:
        pipe.raise_failure()
        raise


def _items(pipe: _Pipeline, full: queue.SimpleQueue) -> Iterator[tuple[int, int, _Buffer]]:
    while True:
        try:
            item = pipe.get(full)
        except _Stopped:
            pipe.raise_failure()
            raise
        if item is _END:
            return
        yield item


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    done = 0
    while done < len(view):
        try:
            done += os.pwrite(fd, view[done:], offset + done)
        except OSError as err:
            raise CopyError("target", offset + done, _os_reason(err)) from err


def _fsync(fd: int, offset: int) -> None:
    try:
        os.fsync(fd)
    except OSError as err:
        raise CopyError("target", offset, _os_reason(err)) from err


def _zeros(fd: int, start: int, end: int) -> None:
    if end > start:
        _pwrite_all(fd, memoryview(mmap.mmap(-1, end - start)), start)


def _call(report: Report, phase: str, done: int, total: int) -> None:
    """Progress output that fails stops the copy like any other failure, as a CopyError."""
    try:
        report(phase, done, total)
    except Exception as err:  # noqa: BLE001 - any failure of the output ends the copy
        raise CopyError("progress", done, f"{type(err).__name__}: {err}") from err


def target_size(fd: int) -> int:
    return os.lseek(fd, 0, os.SEEK_END)


# --- copy ------------------------------------------------------------------------------------


def copy_image(
    source: int,
    size: int,
    target: int,
    *,
    block: int = 512,
    head: int = 0,
    clear_tail: int = 0,
    hash_image: bool = False,
    report: Report = _quiet,
    source_offset: int = 0,
) -> Copied:
    """Write source[0:size) to the start of target (an O_DIRECT fd), fsync, return what was
    written. The image's last block is padded with zeros to the logical block size.

    head (the USB policy): the first `head` bytes are zeroed and synced before the body is
    written, and written last after everything else is synced, so a target that dies or is
    unplugged mid-write never keeps an old boot area and never looks bootable half-written.
    clear_tail: that many bytes at the end of the target (past the image) are zeroed with the
    head, before the body (a stale backup GPT there confuses firmware and partitioners).
    hash_image: SHA-256 exactly the bytes written, in a hasher thread (Copied.sha256,
    .checkpoints). Without it the body goes from the source's page cache to the target with
    no copy through this process (see _write_mapped).
    """
    head_len = min(align_up(head, block), align_up(size, block)) if head else 0
    end = target_size(target)
    tail_start = max(align_up(size, block), end - clear_tail) if clear_tail else end
    copied = Copied(size)
    head_copy = _Buffer(head_len) if head_len else None
    with contextlib.suppress(OSError):  # a hint for the source's read-ahead
        os.posix_fadvise(source, source_offset, size, os.POSIX_FADV_SEQUENTIAL)
    # A byte range of a bigger file (source_offset) always takes the piped reader.
    mapping = None if hash_image or source_offset else _map(source, size)
    pipe = _Pipeline()
    try:
        if mapping is None:
            free, full = pipe.pool(), pipe.queue()
            reader = _reader(pipe, source, size, free, full, "source", base=source_offset)
            pipe.spawn("copy-reader", reader)
            if hash_image:
                todo, hashed = pipe.queue(), pipe.queue()
                digest = hashlib.sha256()
                hasher = _hasher(pipe, todo, free, digest, copied.checkpoints, hashed)
                pipe.spawn("copy-hasher", hasher)
        if head_copy is not None:
            if mapping is not None:  # the piped body keeps the head from its first buffer
                _read_exactly(source, head_copy, min(head_len, size), 0, "source")
            _zeros(target, 0, head_len)
        _zeros(target, tail_start, end)
        if head_len or tail_start < end:
            _fsync(target, 0)
        _call(report, "write", 0, size)
        if mapping is not None:
            _write_mapped(mapping, source, size, target, block, head_len, report)
        else:
            for offset, length, buf in _items(pipe, full):
                padded = align_up(length, block)
                if padded > length:  # O_DIRECT writes whole blocks
                    buf.view[length:padded] = bytes(padded - length)
                start = 0
                if offset < head_len and head_copy is not None:  # CHUNK >= HEAD: first only
                    head_copy.view[:head_len] = buf.view[:head_len]
                    start = head_len
                if start < padded:
                    _pwrite_all(target, buf.view[start:padded], offset + start)
                if hash_image:
                    todo.put((offset, length, buf))  # the hasher hands it back to the pool
                else:
                    free.put(buf)
                _call(report, "write", offset + length, size)
        _call(report, "sync", 0, 1)
        _fsync(target, size)
        if head_copy is not None:
            _pwrite_all(target, head_copy.view[:head_len], 0)
            _fsync(target, 0)
        if hash_image:
            todo.put(_END)
            copied.sha256 = _wait(pipe, hashed)
        _call(report, "sync", 1, 1)
    except BaseException as err:
        pipe.fail(err)
        _reraise(err)
    finally:
        pipe.close()
        if mapping is not None:
            # An error's traceback may still hold a slice of it: then it closes with that.
            with contextlib.suppress(BufferError):
                mapping.close()
    return copied


def _map(source: int, size: int) -> mmap.mmap | None:
    """The source mapped read-only, or None where it cannot be (then the copy reads it)."""
    try:
        if os.fstat(source).st_size < size or size < CHUNK:
            return None  # a short source gets its clear error from the reader
        return mmap.mmap(source, size, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return None


def _write_mapped(
    mapping: mmap.mmap,
    source: int,
    size: int,
    target: int,
    block: int,
    head_len: int,
    report: Report,
) -> None:
    """Write the body straight from the source's mapping: with O_DIRECT the kernel pins the
    source's page-cache pages and the target reads them itself, so no byte is copied through
    this process (a fifth of the CPU of read + write; it matters on a busy machine). This
    process never touches the mapping itself: a source that fails or shrinks is an EFAULT
    from pwrite, never a SIGBUS. Read-ahead is asked for two chunks ahead, so reading an
    uncached source overlaps the writes as the reader thread would."""
    view = memoryview(mapping)
    try:
        whole = size - size % block  # the last, partial block is read and padded instead
        for offset in range(0, size, CHUNK):
            ahead = offset + CHUNK
            if ahead < size:
                with contextlib.suppress(OSError):
                    mapping.madvise(mmap.MADV_WILLNEED, ahead, min(2 * CHUNK, size - ahead))
            stop = min(offset + CHUNK, whole)
            start = max(offset, head_len)
            if start < stop:
                try:
                    _pwrite_all(target, view[start:stop], start)
                except CopyError as err:
                    if isinstance(err.__cause__, OSError) and err.__cause__.errno == errno.EFAULT:
                        raise CopyError("source", err.offset, "it cannot be read") from err
                    raise
            with contextlib.suppress(OSError):  # drop this process's view of the pages
                mapping.madvise(mmap.MADV_DONTNEED, offset, min(CHUNK, size - offset))
            if stop < offset + CHUNK and whole < size and whole >= head_len:
                tail = _Buffer(block)
                _read_exactly(source, tail, size - whole, whole, "source")
                _pwrite_all(target, tail.view[:block], whole)
            _call(report, "write", min(offset + CHUNK, size), size)
    finally:
        view.release()


def _reraise(err: BaseException) -> None:
    """Raise err as one CopyError sentence (a bug anywhere included); stops are already set."""
    wrapped = _as_copy_error(err)
    if wrapped is err:
        raise err
    raise wrapped from err


# --- verify ----------------------------------------------------------------------------------


class _Rereads:
    """How much of the source a verify may still read from the medium where the page cache
    lost it: on a busy machine a few pages of a just-read image get evicted, and re-reading
    those beats hashing the whole rest; a slow medium (a DVD) is re-read at most this much."""

    def __init__(self) -> None:
        self.left = REREAD_LIMIT


def _compare_with_source(
    source: int,
    buf: _Buffer,
    offset: int,
    length: int,
    piece: _Buffer,
    rereads: _Rereads | None,
    source_offset: int = 0,
) -> bool:
    """Compare buf[:length] with source[offset:offset+length]; Mismatch at the first bad block.

    The source is read in pieces into a small buffer that stays in the CPU cache between the
    read and memcmp. rereads (when the check could go on by hash instead): read what the page
    cache holds (RWF_NOWAIT), read the rest from the medium while rereads allow, and return
    False where they do not or the source cannot be read (the caller goes on by hash)."""
    step = len(piece.view)
    for start in range(0, length, step):
        n = min(step, length - start)
        at = source_offset + offset + start
        if rereads is None:
            _read_exactly(source, piece, n, at, "source")
        else:
            cached = _read_cached(source, piece, n, at)
            if cached is None or (not cached and rereads.left < n):
                return False
            if not cached:
                rereads.left -= n
                try:
                    _read_exactly(source, piece, n, at, "source")
                except CopyError:
                    return False  # the hash does not need the source
        if _memcmp(buf.address + start, piece.address, n):
            raise Mismatch(offset + start + _first_difference(buf, start, piece, n))
    return True


def _read_cached(fd: int, buf: _Buffer, length: int, offset: int) -> bool | None:
    """Read buf[:length] only from the page cache: True when read, False when some of it is
    not cached, None when the filesystem cannot tell or the source fails or ends early."""
    got = 0
    while got < length:
        try:
            count = os.preadv(fd, [buf.view[got:length]], offset + got, os.RWF_NOWAIT)
        except BlockingIOError:
            return False
        except OSError:
            return None  # EOPNOTSUPP (e.g. iso9660, tmpfs), or a failing source
        if count == 0:
            return None if got < length else True
        got += count
    return True


def verify_image(
    target: int,
    size: int,
    *,
    block: int = 512,
    source: int | None = None,
    copied: Copied | None = None,
    expected_sha256: str = "",
    digest: bool = False,
    head: int = 0,
    report: Report = _quiet,
    source_offset: int = 0,
) -> Verified:
    """Read target[0:size) back with O_DIRECT and check it; Mismatch if it differs.

    With a source fd: byte for byte against it. With copied (the write pass hashed) or an
    expected SHA-256, from the first block the page cache does not hold (once REREAD_LIMIT bytes
    were re-read from the medium) the check goes on by
    hash, from the hash state saved at that block (without a source: all by hash). digest=True
    also returns the SHA-256 of the target's bytes (for a report), from a hasher thread.
    head (the USB policy; target opened for writing): when the check fails, the first `head`
    bytes are zeroed, so a target that does not hold the image cannot boot.
    """
    expected = (copied.sha256 if copied else "") or expected_sha256
    checkpoints = copied.checkpoints if copied and copied.sha256 else []
    if not checkpoints and expected:
        checkpoints = [hashlib.sha256()]  # without the write pass's states: from 0 only
    if source is None and not expected:
        raise ValueError("verify_image needs a source or an expected SHA-256")
    pipe = _Pipeline()
    free, full = pipe.pool(), pipe.queue()
    result = Verified()
    state = None if source is not None else hashlib.sha256()
    piece = _Buffer(PIECE)
    rereads = _Rereads()
    try:
        pipe.spawn("verify-reader", _reader(pipe, target, size, free, full, "target", block))
        if digest:
            todo, hashed = pipe.queue(), pipe.queue()
            pipe.spawn("verify-hasher", _hasher(pipe, todo, free, hashlib.sha256(), None, hashed))
        _call(report, "verify", 0, size)
        for offset, length, buf in _items(pipe, full):
            if state is None:
                index = offset // CHUNK
                can_hash = bool(expected) and index < len(checkpoints)
                assert source is not None
                if _compare_with_source(
                    source, buf, offset, length, piece, rereads if can_hash else None, source_offset
                ):
                    result.compared += length
                else:
                    state = checkpoints[index].copy()
            if state is not None:
                state.update(buf.view[:length])
                result.hashed += length
            if digest:
                todo.put((offset, length, buf))  # the hasher hands it back to the pool
            else:
                free.put(buf)
            _call(report, "verify", offset + length, size)
        if state is not None and state.hexdigest() != expected:
            raise Mismatch(-1)
        if digest:
            todo.put(_END)
            result.sha256 = _wait(pipe, hashed)
        elif state is not None and result.compared == 0:
            result.sha256 = expected
    except BaseException as err:
        pipe.fail(err)
        if head and isinstance(err, Mismatch | CopyError):
            pipe.close()
            with contextlib.suppress(CopyError):  # best effort: the target may be gone
                _zeros(target, 0, min(align_up(head, block), align_up(size, block)))
                _fsync(target, 0)
        _reraise(err)
    finally:
        pipe.close()
    return result
