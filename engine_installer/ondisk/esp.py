"""Reading files on an EFI system partition with mtools, without mounting it.

Why mtools: the live kernel may lack vfat (and a mount is more than detection should do), and
mtools reads FAT from user space, at a byte offset of a whole disk if need be.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import struct
import subprocess

from engine_installer.base.errors import UserError

MTOOLS_ENV = dict(os.environ, MTOOLS_SKIP_CHECK="1")
BLKFLSBUF = 0x1261  # linux/fs.h: flush and drop a block device's buffer cache


def image_spec(device: str, offset: int = 0) -> str:
    """mtools' name for the FAT at device (+ a byte offset into a whole disk)."""
    return f"{device}@@{offset}" if offset else device


def run_mtools(args: list[str], check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run an mtools command that can never prompt; UserError when check and it fails."""
    # On a name clash (mmd of an existing directory) mtools asks on /dev/tty and waits for
    # ever under the text UI: no controlling terminal and no stdin, so it can never ask.
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    kwargs.setdefault("start_new_session", True)
    proc = subprocess.run(args, capture_output=True, env=MTOOLS_ENV, check=False, **kwargs)
    if check and proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip().splitlines()
        raise UserError(
            f"{args[0]} on the EFI system partition failed ({detail[-1] if detail else ''}); "
            "check the disk"
        )
    return proc


def flush_device(device: str) -> None:
    """Write back and drop cached blocks, so reads through another node see the disk."""
    fd = os.open(device, os.O_RDONLY)
    try:
        os.fsync(fd)
        with contextlib.suppress(OSError):
            fcntl.ioctl(fd, BLKFLSBUF, 0)
    finally:
        os.close(fd)


def read_file(device: str, path: str, offset: int = 0) -> bytes | None:
    """Bytes of ::path on the FAT at device (+offset); None when missing or not FAT."""
    proc = run_mtools(
        ["mcopy", "-n", "-i", image_spec(device, offset), f"::{path}", "-"], check=False
    )
    return proc.stdout if proc.returncode == 0 else None


def _boot_sector_layout(device: str, offset: int) -> tuple[int, int, int]:
    """(bytes per sector, bytes per cluster, byte offset of cluster 2) of a FAT filesystem,
    from its BIOS parameter block (Microsoft's FAT specification, "BPB")."""
    fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    try:
        bpb = os.pread(fd, 512, offset)
    finally:
        os.close(fd)
    if len(bpb) < 512 or bpb[510:512] != b"\x55\xaa":
        raise UserError(f"{device} holds no FAT filesystem at byte {offset}: check the disk")
    sector, per_cluster, reserved, fats, root_entries = struct.unpack_from("<HBHBH", bpb, 11)
    fat_size = struct.unpack_from("<H", bpb, 22)[0] or struct.unpack_from("<I", bpb, 36)[0]
    if sector not in (512, 1024, 2048, 4096) or not per_cluster or not fats:
        raise UserError(f"{device} holds a damaged FAT boot sector: check the disk")
    root_sectors = (root_entries * 32 + sector - 1) // sector
    data_start = (reserved + fats * fat_size + root_sectors) * sector
    return sector, per_cluster * sector, data_start


def holds_fat(device: str) -> bool:
    """device holds a FAT filesystem whose boot sector reads cleanly."""
    try:
        _boot_sector_layout(device, 0)
    except (OSError, UserError):
        return False
    return True


def file_extents(device: str, path: str, offset: int = 0) -> list[tuple[int, int]]:
    """Where ::path's clusters lie on device: (byte offset, length) per run of clusters.

    mshowfat names the clusters; the BPB says where cluster 2 starts. With these an existing
    file's bytes can be rewritten in place, changing no FAT or directory sector at all.
    """
    proc = run_mtools(["mshowfat", "-i", image_spec(device, offset), f"::{path}"], check=False)
    if proc.returncode != 0:
        raise UserError(f"{path} is missing on the EFI system partition of {device}")
    text = proc.stdout.decode(errors="replace")
    runs = re.findall(r"(\d+)(?:-(\d+))?", text[text.rfind("<") :])
    if not runs:
        raise UserError(f"mshowfat gave no clusters for {path} on {device}: check the disk")
    _sector, cluster, data_start = _boot_sector_layout(device, offset)
    extents = []
    for first, last in runs:
        count = int(last or first) - int(first) + 1
        extents.append((offset + data_start + (int(first) - 2) * cluster, count * cluster))
    return extents
