"""The live system's "Check the medium, then install" step (engine-checkmedia.service).

Runs medium_check.check_medium_dir over the mounted boot medium before any installer starts,
showing progress on every console the installer uses. Exit 0 lets the installer units start;
non-zero keeps them from starting (they Require this unit), so a damaged medium never reaches
a disk.
"""

from __future__ import annotations

import sys
from pathlib import Path

from engine_installer.base.errors import UserError
from engine_installer.base.progress import ProgressEvent

MEDIUM = Path("/run/live/medium")


def console_devices(cmdline: str) -> list[Path]:
    """tty1 plus every console= device: where the technician may be looking."""
    devices = ["tty1"]
    for arg in cmdline.split():
        if arg.startswith("console="):
            name = arg.removeprefix("console=").split(",", 1)[0]
            name = "tty1" if name == "tty0" else name
            if name and name not in devices:
                devices.append(name)
    return [Path("/dev") / name for name in devices]


class Consoles:
    def __init__(self, devices: list[Path]) -> None:
        self.handles = []
        for device in devices:
            try:
                self.handles.append(open(device, "w"))  # noqa: SIM115 - kept open for the run
            except OSError:
                continue  # a console= port without hardware behind it

    def say(self, text: str, end: str = "\n") -> None:
        print(text, end=end, flush=True)
        for handle in self.handles:
            try:
                handle.write(text.replace("\n", "\r\n") + end.replace("\n", "\r\n"))
                handle.flush()
            except OSError:
                pass


def run_check(medium: Path, consoles: Consoles) -> int:
    from engine_installer.ondisk.medium import check_medium_dir

    last = -1

    def progress(event: ProgressEvent) -> None:
        nonlocal last
        percent = int(100 * event.done / event.total) if event.total else 100
        if percent // 5 != last // 5:
            last = percent
            consoles.say(f"\rChecking the installation medium: {percent:3d}%", end="")

    consoles.say("Checking the installation medium before anything is installed.")
    try:
        check_medium_dir(medium, progress)
    except UserError as err:
        consoles.say("")
        consoles.say(f"THE MEDIUM IS DAMAGED: {err}")
        consoles.say("Nothing was installed and no disk was touched. Write the medium again")
        consoles.say("(or use another one), then restart this machine.")
        return 1
    consoles.say("\nThe medium is intact; starting the installer.")
    return 0


def main() -> int:
    consoles = Consoles(console_devices(Path("/proc/cmdline").read_text()))
    return run_check(MEDIUM, consoles)


if __name__ == "__main__":
    sys.exit(main())
