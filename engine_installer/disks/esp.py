"""Writing files on the EFI system partition through mtools, without mounting it.

Why mtools: the live kernel may lack vfat, and mtools writes FAT from user space.
Writes replace a file atomically as far as FAT allows: copy to "<name>.new", then rename over
the old entry (one directory-entry update), then fsync the device.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from engine_installer.ondisk.esp import flush_device, image_spec, run_mtools


def _mkdirs(image: str, path: str) -> None:
    parts = path.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        # "-D s": skip a name that exists. Without it mmd asks on /dev/tty (even with stdin
        # closed) and an upgrade started from a terminal hangs there.
        run_mtools(["mmd", "-D", "s", "-i", image, "::" + "/".join(parts[:i])], check=False)


def write_file(device: str, path: str, data: bytes) -> None:
    """Replace ::path with data: write <path>.new, rename it over path, fsync the device."""
    image = image_spec(device)
    _mkdirs(image, path)
    with tempfile.NamedTemporaryFile(prefix="esp-") as handle:
        handle.write(data)
        handle.flush()
        run_mtools(["mcopy", "-o", "-i", image, handle.name, f"::{path}.new"])
    run_mtools(["mmove", "-D", "o", "-i", image, f"::{path}.new", f"::{path}"])
    flush_device(device)


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
    stage = Path(tempfile.mkdtemp(prefix="engine-esp-"))
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
    """Replace several files so that each is old or new after a power cut at any point:
    every "<path>.new" is written and synced first, then each is renamed over its path in
    the given order (one directory-entry update each), then the device is synced."""
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
