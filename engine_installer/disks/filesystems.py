"""Filesystems of an installed Engine: FAT32 ESP and ext4 storage, with labels."""

from __future__ import annotations

import subprocess

from engine_installer.base.errors import UserError

ESP_FAT_LABEL = "ENGINE-ESP"  # FAT labels: 11 characters, upper case by convention
STORAGE_FS_LABEL = "engine-storage"


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(f"{what} failed ({proc.stderr.strip() or proc.returncode}); check the disk")


def make_esp(partition: str) -> None:
    _run(["mkfs.fat", "-F", "32", "-n", ESP_FAT_LABEL, partition], f"mkfs.fat on {partition}")


def make_storage(partition: str) -> None:
    # -F: the partition may carry an old filesystem (reinstall); lazy init keeps mkfs fast.
    _run(
        [
            "mkfs.ext4",
            "-F",
            "-q",
            "-L",
            STORAGE_FS_LABEL,
            "-E",
            "lazy_itable_init=1,lazy_journal_init=1",
            partition,
        ],
        f"mkfs.ext4 on {partition}",
    )
