"""Reading files on an EFI system partition with mtools, without mounting it.

Why mtools: the live kernel may lack vfat (and a mount is more than detection should do), and
mtools reads FAT from user space, at a byte offset of a whole disk if need be.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
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
