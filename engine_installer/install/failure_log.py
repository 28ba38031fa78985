"""Where the log of a failed run goes, so that it outlives the reboot that usually follows.

The live system keeps its log in RAM. After a failure it is copied:
1. onto the boot medium, when that is writable (a stick with a writable file system, or a
   payload directory given with --source): engine-installer-logs/<name>;
2. else, when the run had started writing the target disk and that disk has an EFI system
   partition, onto the ESP as logs/<name> (disks/esp.write_file, under the disk's write
   lock). That directory is used by nothing else: GRUB reads EFI/ and boot/grub/, the install
   marker lives in engine/, so no file a boot or detection reads is rewritten. A failure
   before the first write (a refusal) leaves the disk alone: it was promised untouched.
3. else it stays where it is, and the sentence says so.

The caller shows the returned sentence on the error screen.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path

from engine_installer.base.errors import UserError
from engine_installer.base.i18n import _
from engine_installer.disks import esp
from engine_installer.disks.lock import disk_write_lock
from engine_installer.install.prepare import Prepared
from engine_installer.ondisk.esp import holds_fat
from engine_installer.ondisk.layout import ESP_NUMBER, partition_path

log = logging.getLogger("engine_installer")

MEDIUM_DIR = "engine-installer-logs"
ESP_DIR = "logs"
MAX_BYTES = 8 * 1024 * 1024  # the end of the log; the ESP has room, but it is not a log store


def log_name(now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"engine-installer-{stamp}-failed.log"


def _log_bytes(log_path: Path) -> bytes:
    for handler in logging.getLogger("engine_installer").handlers:
        handler.flush()
    with open(log_path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - MAX_BYTES))
        return handle.read()


def save_to_medium(data: bytes, medium_root: Path, name: str) -> Path | None:
    """The log on the boot medium, or None when it is read-only (an ISO on a DVD or stick)."""
    target_dir = medium_root / MEDIUM_DIR
    try:
        target_dir.mkdir(exist_ok=True)
        target = target_dir / name
        with open(target, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as err:
        log.info("the log cannot go onto the boot medium %s: %s", medium_root, err)
        return None
    return target


def save_to_esp(data: bytes, disk: str, name: str) -> str | None:
    """The log on the target disk's ESP, or None when the disk has none (yet)."""
    partition = partition_path(disk, ESP_NUMBER)
    if not os.path.exists(partition) or not holds_fat(partition):
        log.info("the log cannot go onto %s: it holds no EFI system partition", disk)
        return None
    path = f"{ESP_DIR}/{name}"
    try:
        with disk_write_lock(disk):
            esp.write_file(partition, path, data)
    except UserError as err:
        log.warning("the log could not be written to %s: %s", partition, err)
        return None
    return f"{partition}:/{path}"


def save_failure_log(
    log_path: Path, prepared: Prepared | None, written: bool, medium_root: Path | None
) -> str:
    """Copy the log where it outlives the reboot; one sentence saying where (or why not)."""
    name = log_name()
    try:
        data = _log_bytes(log_path)
    except OSError as err:
        return _("The log {path} cannot be read ({error}).").format(path=log_path, error=err)
    if medium_root is not None:
        saved = save_to_medium(data, medium_root, name)
        if saved is not None:
            log.info("log saved to the boot medium: %s", saved)
            return _("The log was saved on the boot medium: {path}").format(path=saved)
    disk = prepared.disk.path if prepared is not None and prepared.disk else ""
    if disk and written:
        where = save_to_esp(data, disk, name)
        if where is not None:
            log.info("log saved to the EFI system partition: %s", where)
            return _("The log was saved on the EFI system partition of {disk}: {path}").format(
                disk=disk, path=where
            )
    return _(
        "The log could not be saved to a disk (the boot medium is read-only and nothing was "
        "written to a disk with an EFI system partition); it is at {path} until the reboot: "
        "use Shell to copy it."
    ).format(path=log_path)
