"""Files on mounted filesystems, replaced atomically."""

from __future__ import annotations

import os
from pathlib import Path

from engine_installer.ondisk.bootenv import BootEnv, updated_block


def atomic_write(path: Path, data: bytes) -> None:
    """temp + fsync + rename + fsync(dir): readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_bootenv_file(path: Path, env: BootEnv) -> None:
    """A boot environment file on a mounted filesystem (a staged ESP), replaced atomically;
    variables other than ours (e.g. GRUB's saved_entry) are kept, ours come first."""
    path = Path(path)
    current = path.read_bytes() if path.is_file() else None
    atomic_write(path, updated_block(current, env))
