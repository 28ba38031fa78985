"""Files on mounted filesystems, replaced atomically."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from engine_installer.ondisk.bootenv import BootEnv, bootenv_values, format_grubenv, parse_grubenv


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
    """Atomically replace the boot environment: temp file, fsync, rename, fsync the directory.

    A power cut leaves either the old or the new block, never a mix. Variables other than
    ours (e.g. GRUB's saved_entry) are kept.
    """
    path = Path(path)
    values: dict[str, str] = {}
    with contextlib.suppress(OSError, ValueError):
        values = parse_grubenv(path.read_bytes())
    values.update(bootenv_values(env))
    block = format_grubenv(values)
    tmp = path.with_name(path.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, block)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
