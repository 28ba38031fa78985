"""Reading GPT partition tables: both copies, the protective MBR, and what is wrong with them.

Why a hand-written reader next to pyparted: libparted reports a damaged copy through
interactive "Fix/Ignore" exceptions, cannot see a GPT whose protective MBR is gone, and never
says which copy it used. Detection must tell "an Engine disk with one bad copy" (repairable,
never to be wiped) from "a foreign disk", without writing, so it reads the UEFI structures
itself (UEFI 2.10, section 5.3): header CRC32, entry-array CRC32, both copies. Writing and
repairing stay with pyparted and sgdisk.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import threading
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import parted

# libparted keeps global state (its device list); detection calls in from several threads.
LIBPARTED_LOCK = threading.Lock()

GPT_SIGNATURE = b"EFI PART"
HEADER = struct.Struct("<8s4sII4xQQQQ16sQIII")  # the 92 bytes UEFI defines
ENTRY = struct.Struct("<16s16sQQQ72s")
PROTECTIVE_TYPE = 0xEE
MAX_ENTRIES = 1024  # sanity bound on a header's entry count (the usual is 128)
BLKSSZGET = 0x1268


@dataclass(frozen=True)
class GptPartition:
    number: int
    name: str
    start: int  # bytes
    size: int  # bytes
    type_guid: str = ""


@dataclass
class GptCopy:
    """One header with its entry array, as read from the disk."""

    lba: int
    valid: bool
    problem: str = ""  # why it is not valid
    alternate_lba: int = 0
    partitions: list[GptPartition] = field(default_factory=list)
    disk_guid: str = ""


@dataclass
class GptInspection:
    """Both GPT copies and the protective MBR of a disk, and the one to trust."""

    sector_size: int
    disk_size: int
    protective_mbr: bool
    mbr_signature: bool  # 0x55AA at the end of sector 0 (any MBR)
    boot_code: bool  # sector 0 holds BIOS boot code (bytes 0-439 not all zero)
    primary: GptCopy | None
    backup: GptCopy | None
    partitions: list[GptPartition] = field(default_factory=list)

    @property
    def found(self) -> bool:
        """A GPT exists in at least one readable copy."""
        return bool((self.primary and self.primary.valid) or (self.backup and self.backup.valid))

    @property
    def problems(self) -> list[str]:
        """Sentences naming every damage; empty when the table is intact."""
        if not self.found:
            return []
        found = []
        if not self.protective_mbr:
            found.append("the protective MBR (sector 0) is missing")
        if not (self.primary and self.primary.valid):
            found.append(
                "the primary GPT header is damaged"
                + (f" ({self.primary.problem})" if self.primary and self.primary.problem else "")
            )
        if not (self.backup and self.backup.valid):
            reason = self.backup.problem if self.backup else ""
            found.append("the backup GPT header is damaged" + (f" ({reason})" if reason else ""))
        cut = [p for p in self.partitions if p.start + p.size > self.disk_size]
        if cut:
            found.append(
                f"the disk is smaller than its partition table says (partition {cut[0].number} "
                "ends beyond the end of the disk)"
            )
        return found

    @property
    def intact(self) -> bool:
        return self.found and not self.problems

    @property
    def repairable(self) -> bool:
        """Damaged, but one copy holds the whole table and every partition fits the disk."""
        if not self.found or self.intact:
            return False
        return all(p.start + p.size <= self.disk_size for p in self.partitions)


def _guid(raw: bytes) -> str:
    return str(uuid.UUID(bytes_le=raw))


def _read_at(fd: int, offset: int, length: int) -> bytes:
    return os.pread(fd, length, offset) if offset >= 0 else b""


def _read_copy(fd: int, lba: int, sector: int, disk_size: int) -> GptCopy:
    raw = _read_at(fd, lba * sector, sector)
    if len(raw) < HEADER.size:
        return GptCopy(lba, False, "beyond the end of the disk")
    (
        signature,
        _revision,
        header_size,
        header_crc,
        my_lba,
        alternate_lba,
        _first_usable,
        _last_usable,
        disk_guid,
        entries_lba,
        count,
        entry_size,
        entries_crc,
    ) = HEADER.unpack_from(raw)
    if signature != GPT_SIGNATURE:
        return GptCopy(lba, False, "no GPT signature")
    if not HEADER.size <= header_size <= sector:
        return GptCopy(lba, False, "bad header size")
    check = bytearray(raw[:header_size])
    check[16:20] = b"\0\0\0\0"
    if zlib.crc32(check) != header_crc:
        return GptCopy(lba, False, "header checksum mismatch")
    if my_lba != lba:
        return GptCopy(lba, False, f"header says it lives at sector {my_lba}")
    if not (0 < count <= MAX_ENTRIES and entry_size >= ENTRY.size and entry_size % 8 == 0):
        return GptCopy(lba, False, "bad partition entry array geometry")
    array = _read_at(fd, entries_lba * sector, count * entry_size)
    if len(array) != count * entry_size:
        return GptCopy(lba, False, "partition entries beyond the end of the disk")
    if zlib.crc32(array) != entries_crc:
        return GptCopy(lba, False, "partition entries checksum mismatch")
    partitions = []
    for index in range(count):
        type_guid, _unique, first, last, _attrs, name = ENTRY.unpack_from(array, index * entry_size)
        if type_guid == bytes(16):
            continue
        partitions.append(
            GptPartition(
                number=index + 1,
                name=name.decode("utf-16-le", errors="replace").split("\0", 1)[0],
                start=first * sector,
                size=(last - first + 1) * sector,
                type_guid=_guid(type_guid),
            )
        )
    return GptCopy(lba, True, "", alternate_lba, partitions, _guid(disk_guid))


def logical_sector_size(fd: int) -> int:
    """The device's logical block size (512 for regular files)."""
    with contextlib.suppress(OSError):
        raw = fcntl.ioctl(fd, BLKSSZGET, struct.pack("i", 0))
        return max(512, struct.unpack("i", raw)[0])
    return 512


def _protective(mbr: bytes) -> tuple[bool, bool]:
    """(a protective MBR, any MBR signature) from sector 0."""
    if len(mbr) < 512 or mbr[510:512] != b"\x55\xaa":
        return False, False
    types = [mbr[446 + 16 * i + 4] for i in range(4)]
    return PROTECTIVE_TYPE in types, True


def inspect_gpt(path: str, sector_size: int | None = None) -> GptInspection:
    """Read both GPT copies and sector 0 of a disk or image; OSError when unreadable."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        sector = sector_size or logical_sector_size(fd)
        size = os.lseek(fd, 0, os.SEEK_END)
        last = size // sector - 1
        sector0 = _read_at(fd, 0, 512)
        protective, signature = _protective(sector0)
        primary = _read_copy(fd, 1, sector, size)
        backup = _read_copy(fd, last, sector, size)
        if not backup.valid and primary.valid and primary.alternate_lba > last:
            # The disk is shorter than the table says: its backup lay beyond the new end.
            backup.problem = (
                "the disk is shorter than its partition table says: it lay past its end"
            )
        elif not backup.valid and primary.valid and primary.alternate_lba != last:
            # The disk grew: look where the primary says the backup is.
            moved = _read_copy(fd, primary.alternate_lba, sector, size)
            if moved.valid:
                backup = moved
                backup.valid = False
                backup.problem = "not at the end of the disk"
    finally:
        os.close(fd)
    best = primary if primary.valid else backup if backup.valid else None
    if best is None and backup.problem == "not at the end of the disk":
        best = backup
    return GptInspection(
        sector_size=sector,
        disk_size=size,
        protective_mbr=protective,
        mbr_signature=signature,
        boot_code=any(sector0[:440]),
        primary=primary,
        backup=backup,
        partitions=list(best.partitions) if best else [],
    )


@contextlib.contextmanager
def parted_device(disk: str) -> Iterator[parted.Device]:
    """A libparted device, dropped from libparted's cache afterwards: the cache keeps the size
    it saw first, which goes stale when a disk (or loop device) is replaced under the path."""
    with LIBPARTED_LOCK:
        device = parted.getDevice(disk)
        try:
            yield device
        finally:
            device.removeFromCache()


def read_gpt(disk: str) -> list[tuple[int, str, int, int]]:
    """(number, name, start bytes, size bytes) per partition from the copy to trust; [] without
    a GPT. Reads both copies, so a disk with one damaged copy still shows its partitions."""
    try:
        inspection = inspect_gpt(disk)
    except OSError:
        return []
    return [(p.number, p.name, p.start, p.size) for p in inspection.partitions]
