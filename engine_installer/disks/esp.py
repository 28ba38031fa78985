"""Files on the EFI system partition through mtools, without mounting it.

Why mtools: the live kernel may lack vfat (and a mount is more than detection should do), and
mtools reads and writes FAT from user space, at a byte offset of a whole disk if need be.
Writes replace a file atomically as far as FAT allows: copy to "<name>.new", then rename over
the old entry (one directory-entry update), then fsync the device.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import UserError

MTOOLS_ENV = dict(os.environ, MTOOLS_SKIP_CHECK="1")
BLKFLSBUF = 0x1261  # linux/fs.h: flush and drop a block device's buffer cache


def _image(device: str, offset: int = 0) -> str:
    return f"{device}@@{offset}" if offset else device


def _mtools(args: list[str], check: bool = True, **kwargs) -> subprocess.CompletedProcess:
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
    proc = _mtools(["mcopy", "-n", "-i", _image(device, offset), f"::{path}", "-"], check=False)
    return proc.stdout if proc.returncode == 0 else None


def _mkdirs(image: str, path: str) -> None:
    parts = path.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        # "-D s": skip a name that exists. Without it mmd asks on /dev/tty (even with stdin
        # closed) and an upgrade started from a terminal hangs there.
        _mtools(["mmd", "-D", "s", "-i", image, "::" + "/".join(parts[:i])], check=False)


def write_file(device: str, path: str, data: bytes) -> None:
    """Replace ::path with data: write <path>.new, rename it over path, fsync the device."""
    image = _image(device)
    _mkdirs(image, path)
    with tempfile.NamedTemporaryFile(prefix="esp-") as handle:
        handle.write(data)
        handle.flush()
        _mtools(["mcopy", "-o", "-i", image, handle.name, f"::{path}.new"])
    _mtools(["mmove", "-D", "o", "-i", image, f"::{path}.new", f"::{path}"])
    flush_device(device)


@contextlib.contextmanager
def staged(device: str) -> Iterator[Path]:
    """A directory whose files end up on the ESP, for tools that want one (the boot loader).

    The kernel's vfat mount when the kernel has it; otherwise an empty staging directory
    merged onto the FAT afterwards with `mcopy -s -o` (files already on the ESP that the
    body does not create, such as the install marker, stay as they are).
    """
    from .mounts import mounted

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
            _mtools(["mcopy", "-s", "-o", "-i", device, *entries, "::/"])
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
    image = _image(device)
    with tempfile.TemporaryDirectory(prefix="esp-") as tmp:
        for number, (path, data) in enumerate(files):
            _mkdirs(image, path)
            local = Path(tmp) / str(number)
            local.write_bytes(data)
            _mtools(["mcopy", "-o", "-i", image, str(local), f"::{path}.new"])
    flush_device(device)
    for path, _data in files:
        _mtools(["mmove", "-D", "o", "-i", image, f"::{path}.new", f"::{path}"])
    flush_device(device)
