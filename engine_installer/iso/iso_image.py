"""Assemble the medium with pycdlib: ISO9660 level 3 + Rock Ridge + Joliet, El Torito for BIOS
and UEFI, /SHA256SUMS over every file (and, for a signed medium, /SHA256SUMS.p7s: its detached
CMS signature), then the hybrid MBR (hybrid_mbr.py) for USB sticks.

Reproducible: files and directories are added in sorted order, every timestamp is the given
epoch (pycdlib itself has no SOURCE_DATE_EPOCH support, see pycdlib_clock), and nothing random
is written.
"""

from __future__ import annotations

import hashlib
import io
import re
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pycdlib

from engine_installer.base.errors import UserError
from engine_installer.iso import hybrid_mbr
from engine_installer.ondisk.signature import SIGNATURE_NAME

SECTOR = 2048
SUMS_NAME = "SHA256SUMS"
FILE_MODE = 0o100444
DIR_MODE = 0o040555
# GRUB's i386-pc El Torito image: byte offset of the first blocklist entry of diskboot.img
# (after 2048 bytes of cdboot.img). grub-mkrescue/xorriso (--grub2-boot-info) put there the
# 512-byte sector of the rest of core.img, so the same image also boots from a hard disk/USB.
GRUB2_BOOT_INFO_OFFSET = 2548
WRITE_BLOCK = 1024 * 1024
# Zeros after the file system, as xorriso/mkisofs `-pad` add: BIOS GRUB reads the CD in 32 KiB
# cache blocks and gets garbage (not an error) for a block running past the end of the medium,
# so files in the last sectors were unreadable. At least 300 KiB, up to a whole MiB, which also
# keeps the image a whole number of 64-head/32-sector "cylinders" for USB sticks.
MIN_PAD = 300 * 1024
PAD_ALIGN = 1024 * 1024
# A signature's length is fixed before the layout (its file is placed then); ECDSA signatures
# vary by a byte or two, so signing is repeated until one has the reserved length.
SIGN_ATTEMPTS = 32

Source = Path | bytes


@dataclass
class Layout:
    """Where things landed, for the MBR, the tests and the report."""

    size: int
    bios_lba: int
    efi_lba: int
    efi_size: int
    files: dict[str, str] = field(default_factory=dict)  # medium path -> sha256


class _FixedClock(types.ModuleType):
    """The time module as pycdlib sees it during a build: a fixed now, and UTC as local time
    (pycdlib records local times with a GMT offset, which would vary with the builder's TZ)."""

    def __init__(self, epoch: int) -> None:
        super().__init__("time")
        self._epoch = float(epoch)

    def __getattr__(self, name: str) -> object:
        return getattr(time, name)

    def time(self) -> float:  # noqa: D102 - mirrors time.time
        return self._epoch

    def localtime(self, secs: float | None = None) -> time.struct_time:
        return time.gmtime(self._epoch if secs is None else secs)


@contextmanager
def pycdlib_clock(epoch: int) -> Iterator[None]:
    """Pin pycdlib's clock. pycdlib calls time.time() for every record and has no
    SOURCE_DATE_EPOCH support; swapping the module reference it uses is the narrowest fix."""
    modules = [m for m in vars(pycdlib).values() if isinstance(m, types.ModuleType)]
    modules += [pycdlib.pycdlib, pycdlib.dates, pycdlib.headervd, pycdlib.utils]
    saved = {}
    clock = _FixedClock(epoch)
    for module in modules:
        if getattr(module, "time", None) is time:
            saved[module] = module.time
            module.time = clock
    try:
        yield
    finally:
        for module, original in saved.items():
            module.time = original


_BAD_ISO_CHARS = re.compile(r"[^A-Z0-9_]")


def iso9660_name(name: str, is_dir: bool) -> str:
    """A level-3 ISO9660 identifier for a Rock Ridge name (Rock Ridge/Joliet keep the real one)."""
    if is_dir:
        return _BAD_ISO_CHARS.sub("_", name.upper())[:31]
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    stem = _BAD_ISO_CHARS.sub("_", stem.upper()) or "_"
    ext = _BAD_ISO_CHARS.sub("_", ext.upper())[:10]
    stem = stem[: 30 - len(ext) - 1]
    return f"{stem}.{ext};1"


def _iso_path(rel: str, is_dir: bool) -> str:
    parts = PurePosixPath(rel).parts
    names = [iso9660_name(p, True) for p in parts[:-1]] + [iso9660_name(parts[-1], is_dir)]
    return "/" + "/".join(names)


def sha256_source(source: Source) -> str:
    if isinstance(source, bytes | bytearray):
        return hashlib.sha256(source).hexdigest()
    digest = hashlib.sha256()
    with open(source, "rb") as handle:
        while block := handle.read(4 * WRITE_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _size(source: Source) -> int:
    return len(source) if isinstance(source, bytes | bytearray) else source.stat().st_size


def patch_grub_eltorito(image: bytearray, lba: int) -> None:
    """Fill the boot info table (what `-boot-info-table` writes) and GRUB's hard-disk blocklist
    (what xorriso's `--grub2-boot-info` writes) into the BIOS boot image, whose LBA is now
    known. Done here rather than with pycdlib's boot_info_table because its checksum would be
    computed before the blocklist patch."""
    image[GRUB2_BOOT_INFO_OFFSET : GRUB2_BOOT_INFO_OFFSET + 8] = (lba * 4 + 5).to_bytes(8, "little")
    padded = bytes(image[64:]) + b"\0" * (-len(image) % 4)
    checksum = sum(int.from_bytes(padded[i : i + 4], "little") for i in range(0, len(padded), 4))
    image[8:24] = (
        (16).to_bytes(4, "little")  # LBA of the primary volume descriptor
        + lba.to_bytes(4, "little")
        + len(image).to_bytes(4, "little")
        + (checksum & 0xFFFFFFFF).to_bytes(4, "little")
    )


def _signature_of_length(sign: Callable[[bytes], bytes], data: bytes, length: int) -> bytes:
    for _attempt in range(SIGN_ATTEMPTS):
        signature = sign(data)
        if len(signature) == length:
            return signature
    raise UserError(
        f"the signing key gives signatures of varying length (not {length} bytes in "
        f"{SIGN_ATTEMPTS} tries): sign with an RSA key"
    )


def assemble(
    output: Path,
    files: dict[str, Source],
    *,
    volume_id: str,
    bios_boot: str,
    efi_boot: str,
    boot_catalog: str,
    epoch: int,
    disk_signature: bytes,
    size_check: Callable[[int], None] | None = None,
    sign: Callable[[bytes], bytes] | None = None,
) -> Layout:
    """Write the ISO. `files` maps medium paths ("engine/root.img") to a file or bytes; the
    BIOS boot image must be given as bytes (it is patched once its position is known). sign
    (SHA256SUMS bytes → DER signature) makes a signed medium."""
    if SUMS_NAME in files or SIGNATURE_NAME in files:
        raise ValueError(f"{SUMS_NAME} and {SIGNATURE_NAME} are made by assemble()")
    bios_data = bytearray(files[bios_boot])
    sources: dict[str, Source] = dict(files)
    sums_len = sum(64 + 2 + len(rel) + 1 for rel in sources)
    sums_fp = io.BytesIO(b"\0" * sums_len)
    # The signature's file is placed with the others; its bytes come once SHA256SUMS is known.
    signature_len = len(sign(b"\0" * sums_len)) if sign else 0
    signature_fp = io.BytesIO(b"\0" * signature_len)
    made = [SUMS_NAME, SIGNATURE_NAME] if sign else [SUMS_NAME]
    bios_fp = io.BytesIO(bytes(bios_data))
    directories = sorted({str(p) for rel in sources for p in PurePosixPath(rel).parents} - {"."})
    with pycdlib_clock(epoch):
        iso = pycdlib.PyCdlib()
        iso.new(
            interchange_level=3,
            rock_ridge="1.09",
            joliet=3,
            vol_ident=volume_id,
            sys_ident="LINUX",
            app_ident_str="ENGINE-ISO (PYCDLIB)",
        )
        for directory in directories:
            iso.add_directory(
                _iso_path(directory, True),
                rr_name=PurePosixPath(directory).name,
                joliet_path=f"/{directory}",
                file_mode=DIR_MODE,
            )
        for rel in sorted([*sources, *made]):
            kwargs = {
                "rr_name": PurePosixPath(rel).name,
                "joliet_path": f"/{rel}",
                "file_mode": FILE_MODE,
            }
            if rel == SUMS_NAME:
                iso.add_fp(sums_fp, sums_len, _iso_path(rel, False), **kwargs)
            elif rel == SIGNATURE_NAME:
                iso.add_fp(signature_fp, signature_len, _iso_path(rel, False), **kwargs)
            elif rel == bios_boot:
                iso.add_fp(bios_fp, len(bios_data), _iso_path(rel, False), **kwargs)
            elif isinstance(sources[rel], Path):
                iso.add_file(str(sources[rel]), _iso_path(rel, False), **kwargs)
            else:
                data = sources[rel]
                iso.add_fp(io.BytesIO(bytes(data)), len(data), _iso_path(rel, False), **kwargs)
        catalog = PurePosixPath(boot_catalog)
        efi_size = _size(sources[efi_boot])
        iso.add_eltorito(
            _iso_path(bios_boot, False),
            bootcatfile=_iso_path(boot_catalog, False),
            rr_bootcatname=catalog.name,
            joliet_bootcatfile=f"/{boot_catalog}",
            boot_load_size=4,
            media_name="noemul",
        )
        iso.add_eltorito(
            _iso_path(efi_boot, False),
            bootcatfile=_iso_path(boot_catalog, False),
            rr_bootcatname=catalog.name,
            joliet_bootcatfile=f"/{boot_catalog}",
            # El Torito counts 512-byte sectors in 16 bits; 0 means "the whole file".
            boot_load_size=efi_size // 512 if efi_size // 512 <= 0xFFFF else 0,
            platform_id=0xEF,
            efi=True,
            media_name="noemul",
        )
        iso.force_consistency()
        size = iso.pvd.space_size * SECTOR
        if size_check:
            size_check(size)
        bios_lba = iso.get_record(iso_path=_iso_path(bios_boot, False)).extent_location()
        efi_lba = iso.get_record(iso_path=_iso_path(efi_boot, False)).extent_location()
        patch_grub_eltorito(bios_data, bios_lba)
        bios_fp.seek(0)
        bios_fp.write(bios_data)
        sums = {
            rel: sha256_source(bytes(bios_data) if rel == bios_boot else sources[rel])
            for rel in sorted(sources)
        }
        sums_text = "".join(f"{digest}  {rel}\n" for rel, digest in sums.items()).encode()
        assert len(sums_text) == sums_len
        sums_fp.seek(0)
        sums_fp.write(sums_text)
        if sign:
            signature_fp.seek(0)
            signature_fp.write(_signature_of_length(sign, sums_text, signature_len))
        try:
            iso.write(str(output), blocksize=WRITE_BLOCK)
        except OSError as err:
            raise UserError(
                f"cannot write {output} ({err}): free space or pick another -o"
            ) from None
        finally:
            iso.close()
    with open(output, "r+b") as handle:
        end = handle.seek(0, io.SEEK_END)
        handle.truncate(-(-(end + MIN_PAD) // PAD_ALIGN) * PAD_ALIGN)
    hybrid_mbr.write(output, bios_lba=bios_lba, efi_lba=efi_lba, efi_size=efi_size,
                     disk_signature=disk_signature)  # fmt: skip
    return Layout(size=size, bios_lba=bios_lba, efi_lba=efi_lba, efi_size=efi_size, files=sums)
