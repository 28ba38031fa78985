"""Writing files on the EFI system partition through mtools, without mounting it.

Why mtools: the live kernel may lack vfat, and mtools writes FAT from user space.

Two ways to write, chosen by what a torn write (a power cut between sectors) may cost:
- write_file creates or replaces a file (new clusters, FAT and directory updates). Used where
  a half-done replacement cannot hurt: on a fresh ESP, for files only the inactive slot reads,
  and for the install marker, which keeps two copies (see ondisk/marker.py).
- rewrite_in_place overwrites an existing file's bytes where they lie, sector by sector,
  touching no FAT or directory sector. The boot environment is rewritten this way, as GRUB's
  own save_env does at boot: all of its variables sit in the first sector, so a switch is a
  one-sector write that lands whole or not at all.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from engine_installer.base.errors import UserError
from engine_installer.machine.ownership import ESP_PREFIX, own_prefix
from engine_installer.ondisk.esp import (
    file_extents,
    flush_device,
    image_spec,
    read_file,
    run_mtools,
)
from engine_installer.ondisk.gpt import logical_sector_size

log = logging.getLogger("engine_installer")


def _mkdirs(image: str, path: str) -> None:
    parts = path.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        # "-D s": skip a name that exists. Without it mmd asks on /dev/tty (even with stdin
        # closed) and an upgrade started from a terminal hangs there.
        run_mtools(["mmd", "-D", "s", "-i", image, "::" + "/".join(parts[:i])], check=False)


def write_file(device: str, path: str, data: bytes) -> None:
    """Create or replace ::path with data, then fsync the device."""
    image = image_spec(device)
    _mkdirs(image, path)
    with tempfile.NamedTemporaryFile(prefix=own_prefix(ESP_PREFIX)) as handle:
        handle.write(data)
        handle.flush()
        run_mtools(["mcopy", "-o", "-i", image, handle.name, f"::{path}"])
    flush_device(device)


def rewrite_in_place(device: str, path: str, data: bytes) -> int:
    """Overwrite the existing ::path (same length) where its clusters lie; only the sectors
    that change are written, in file order, each followed by fsync. Returns how many sectors
    changed. UserError when the file is missing or has another length."""
    current = read_file(device, path)
    if current is None:
        raise UserError(f"{path} is missing on {device}: repair the Engine disk")
    if len(current) != len(data):
        raise UserError(
            f"{path} on {device} is {len(current)} bytes, not {len(data)}: repair the Engine disk"
        )
    sector = _logical_sector(device)
    extents = file_extents(device, path)
    changed = 0
    fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    try:
        position = 0  # byte offset in the file
        for disk_offset, length in extents:
            for start in range(0, length, sector):
                file_at = position + start
                if file_at >= len(data):
                    break
                new = data[file_at : file_at + sector]
                if new == current[file_at : file_at + sector]:
                    continue
                os.pwrite(fd, new, disk_offset + start)
                os.fsync(fd)
                changed += 1
            position += length
    finally:
        os.close(fd)
    flush_device(device)
    if changed > 1:
        log.warning("%s on %s: %d sectors rewritten (not one atomic write)", path, device, changed)
    return changed


def _logical_sector(device: str) -> int:
    fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return logical_sector_size(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def staged(device: str) -> Iterator[Path]:
    """A directory whose files end up on the ESP, for tools that want one (the boot loader).

    The kernel's vfat mount when the kernel has it; otherwise an empty staging directory
    merged onto the FAT afterwards with `mcopy -s -o` (files already on the ESP that the
    body does not create, such as the install marker, stay as they are).
    """
    from engine_installer.disks.mounts import mounted

    if _kernel_has_vfat():
        with mounted(device, "vfat") as root:
            yield root
        flush_device(device)
        return
    stage = Path(tempfile.mkdtemp(prefix=own_prefix(ESP_PREFIX)))
    try:
        yield stage
        entries = [str(p) for p in sorted(stage.iterdir())]
        if entries:
            run_mtools(["mcopy", "-s", "-o", "-i", device, *entries, "::/"])
        flush_device(device)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _kernel_has_vfat() -> bool:
    try:
        text = Path("/proc/filesystems").read_text()
    except OSError:
        return False
    if "\tvfat" in text:
        return True
    # The module may just not be loaded yet.
    return subprocess.run(["modprobe", "-q", "vfat"], check=False).returncode == 0


def replace_files(device: str, files: list[tuple[str, bytes]]) -> None:
    """Replace files too big to rewrite in place (the boot chain): every "<path>.new" is
    written beside the old file and synced first, then each is renamed over its path in the
    given order, one at a time, each rename synced before the next. A rename only changes that
    directory's entries, so a power cut tears at most the one file being renamed; the caller
    keeps a second whole copy of what matters elsewhere (disks/efi_chain.py)."""
    image = image_spec(device)
    with tempfile.TemporaryDirectory(prefix="esp-") as tmp:
        for number, (path, data) in enumerate(files):
            _mkdirs(image, path)
            local = Path(tmp) / str(number)
            local.write_bytes(data)
            run_mtools(["mcopy", "-o", "-i", image, str(local), f"::{path}.new"])
    flush_device(device)
    for path, _data in files:
        run_mtools(["mmove", "-D", "o", "-i", image, f"::{path}.new", f"::{path}"])
        flush_device(device)
