"""Ask before erasing sticks: show model, serial and size; ask again for anything above 128 GB
(a "stick" that big is more likely an external backup disk)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

from engine_installer.base.errors import UserError
from engine_installer.machine.snapshot import DiskInfo
from engine_installer.usb.devices import BIG_STICK


def human_size(size: int) -> str:
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def describe(disk: DiskInfo) -> str:
    name = " ".join(p for p in (disk.vendor, disk.model) if p) or "(no model)"
    serial = disk.serial or "(no serial)"
    return f"{disk.path:<14} {human_size(disk.size):>9}  {name}  serial {serial}  [{disk.bus}]"


def confirm_erase(
    disks: list[DiskInfo],
    image_label: str,
    yes: bool,
    ask: Callable[[str], str] | None = None,
    out: TextIO | None = None,
    interactive: bool | None = None,
) -> None:
    """Return if the user agreed (or passed --yes); raise UserError if not."""
    out = out or sys.stderr
    interactive = sys.stdin.isatty() if interactive is None else interactive
    ask = ask or input
    out.write(f"engine-usb will write {image_label} to, ERASING everything on:\n")
    for disk in disks:
        out.write(f"  {describe(disk)}\n")
        for part in disk.partitions:
            if part.mountpoint:
                out.write(f"      {part.path} is mounted on {part.mountpoint}\n")
    big = [disk for disk in disks if disk.size > BIG_STICK]
    for disk in big:
        out.write(
            f"warning: {disk.path} is {human_size(disk.size)}, more than a USB stick usually "
            "holds; make sure it is not a backup or system disk\n"
        )
    out.flush()
    if yes:
        return
    if not interactive:
        raise UserError("confirmation needed but there is no terminal: pass --yes to proceed")
    if ask("Erase these devices? Type 'yes' to continue: ").strip().lower() != "yes":
        raise UserError("not confirmed: nothing was written")
    for disk in big:
        answer = ask(f"{disk.path} is {human_size(disk.size)}. Type its name again to erase it: ")
        if answer.strip() not in (disk.path, disk.path.removeprefix("/dev/")):
            raise UserError(f"{disk.path} not confirmed: nothing was written")
