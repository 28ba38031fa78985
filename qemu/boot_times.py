"""Where a live-system boot's time went: host-side arrival times of the serial console's bytes
around the guest's own report line (engine_installer/tui/boot_times.py).

    times = breakdown(vm)        # after screen 1 is on the console; None without a report
    print(times.summary())       # "screen 1 after 41.2 s: firmware+GRUB 0.6 | menu 5.3 | ..."

Phases, in order (each in seconds; together they make `total`, QEMU start to screen 1):
    firmware   QEMU start to GRUB's menu (firmware, GRUB's core, finding the medium)
    menu       the menu's countdown, to the chosen entry's "Loading the Engine installer"
    load       GRUB reading the kernel and initrd; the kernel's decompression
    kernel     the kernel's own start, to "Run /init" (includes unpacking the initramfs)
    initramfs  live-boot: drivers, finding and mounting the medium and the squashfs layers
    systemd    systemd's start in the real root, to the installer unit's process
    python     the installer's Python start and imports, to its UI
    frame      the UI's start to screen 1 complete on the serial console
The guest's clock (kernel log, CLOCK_MONOTONIC) is tied to the host's by the arrival time of
the report line, printed when the UI starts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine_installer.iso.bootloader import LOADING_MESSAGE
from engine_installer.tui.boot_times import FIELDS, PREFIX, parse

if TYPE_CHECKING:
    from .harness import VM

GRUB_MENU = b"GNU GRUB"
SCREEN1 = b"1/5 Install choice"
PHASES = ("firmware", "menu", "load", "kernel", "initramfs", "systemd", "python", "frame")


@dataclass
class BootTimes:
    firmware: float
    menu: float
    load: float
    kernel: float
    initramfs: float
    systemd: float
    python: float
    frame: float
    total: float

    def summary(self) -> str:
        phases = " | ".join(f"{name} {getattr(self, name):.1f}" for name in PHASES)
        return f"screen 1 after {self.total:.1f} s: {phases}"

    def to_json(self) -> str:
        return json.dumps({k: round(v, 2) for k, v in asdict(self).items()})

    @classmethod
    def read(cls, path: Path) -> BootTimes:
        return cls(**json.loads(Path(path).read_text()))


def from_stream(
    data: bytes, arrival: Callable[[int], float | None], screen1: bytes = SCREEN1
) -> BootTimes | None:
    """The breakdown from the console bytes and arrival(offset) -> seconds since QEMU started
    (None when that byte never arrived). None when a marker is missing (not a live boot, or
    screen 1 not reached yet)."""
    marks: dict[str, float] = {}
    for name, needle in (("grub", GRUB_MENU), ("loading", LOADING_MESSAGE.encode()),
                         ("report", PREFIX.encode())):  # fmt: skip
        offset = data.find(needle)
        if offset < 0:
            return None
        when = arrival(offset + len(needle) - 1)
        if when is None:
            return None
        marks[name] = when
    report_at = data.find(PREFIX.encode())
    screen = data.find(screen1, report_at)
    guest = parse(data[report_at:].decode(errors="replace"))
    if screen < 0 or not guest or any(k not in guest for k in FIELDS):
        return None
    screen_at = arrival(screen + len(screen1) - 1)
    if screen_at is None:
        return None
    kernel_start = marks["report"] - guest["ui"]  # host time of the guest clock's zero
    return BootTimes(
        firmware=marks["grub"],
        menu=marks["loading"] - marks["grub"],
        load=kernel_start - marks["loading"],
        kernel=guest["init"],
        initramfs=guest["systemd"] - guest["init"],
        systemd=guest["installer"] - guest["systemd"],
        python=guest["ui"] - guest["installer"],
        frame=screen_at - marks["report"],
        total=screen_at,
    )


def breakdown(vm: VM, screen1: bytes = SCREEN1) -> BootTimes | None:
    return from_stream(vm.console_bytes(), vm.arrival_time, screen1)


# How often the laptop's screen is read back while waiting for tty1's installer: the figure
# is late by up to this much (plus one screendump).
SCREEN_POLL = 0.5


def boot_to_screens(
    iso: Path,
    firmware: str,
    media: str,
    workdir: Path,
    *,
    memory_mb: int = 2048,
    timeout: float = 900.0,
    laptop_screen: bool = True,
) -> tuple[BootTimes, float | None]:
    """Boot the installer ISO on a laptop VM with a blank disk until screen 1 is complete on
    the serial console, then (laptop_screen) on until tty1's installer is on the laptop's own
    (VGA) screen. Returns the breakdown, and seconds from QEMU's start to the laptop's screen
    (None when it did not come within 120 s of the serial console's screen 1, or was not asked
    for). HarnessError when screen 1 does not come."""
    import subprocess
    import time

    from .harness import HarnessError, laptop
    from .vga import wait_installer_on_screen

    workdir.mkdir(parents=True, exist_ok=True)
    disk = workdir / "laptop.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "8G"], check=True)
    vm = laptop(disk, media=iso, media_kind=media, firmware=firmware, workdir=workdir,
                disk_format="qcow2", memory_mb=memory_mb)  # fmt: skip
    with vm:
        vm.wait_for(SCREEN1.decode(), timeout=timeout)
        deadline = time.monotonic() + 30
        while (times := vm.boot_times()) is None:
            if time.monotonic() > deadline:
                raise HarnessError("screen 1 came without an engine-boot-times report")
            time.sleep(0.2)
        if not laptop_screen:
            return times, None
        shown, _detail = wait_installer_on_screen(vm, workdir, 120, every=SCREEN_POLL)
        return times, vm.elapsed if shown else None
