"""Where the live system's boot time went, as one line on the installer's console.

On the live system the installer prints, just before its first frame (which clears the
screen, so a technician barely sees it; the serial log and the installer log keep it):

    engine-boot-times: init=4.75 systemd=14.40 installer=21.70 ui=24.10

Each figure is seconds since the kernel started (the kernel log's clock, which is also
CLOCK_MONOTONIC): `init` the kernel handing over to the initramfs ("Run /init"), `systemd`
systemd starting in the real root (the end of the initramfs), `installer` this process's
start (its unit), `ui` the text UI starting (Python and its imports done). The QEMU harness
(qemu/harness.py) puts host-side times around it: firmware, GRUB and the first frame.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

PREFIX = "engine-boot-times:"
FIELDS = ("init", "systemd", "installer", "ui")
# Kernel log records that mark a phase's end: the first record containing the text wins.
KMSG_MARKS = {
    "init": "Run /init as init process",
    "systemd": "running in system mode",  # systemd's banner, in the real root
}
KMSG = Path("/dev/kmsg")
LIVE_MEDIUM = Path("/run/live/medium")  # live-boot mounts the boot medium here
STATE_DIR = Path("/run/engine-installer")


def kernel_marks(kmsg: Path | None = None) -> dict[str, float]:
    """Timestamps (s) of KMSG_MARKS in the kernel log; marks not found are left out.

    /dev/kmsg (not `dmesg`: no process to start) gives one record per read(),
    "prio,seq,usec,flags;text" (lines starting with a space continue a record); a non-blocking
    read ends with EAGAIN after the newest record."""
    found: dict[str, float] = {}
    try:
        fd = os.open(kmsg or KMSG, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return found
    try:
        while len(found) < len(KMSG_MARKS):
            try:
                chunk = os.read(fd, 8192)
            except OSError as err:
                if err.errno == errno.EPIPE:  # older records were overwritten: read on
                    continue
                break  # EAGAIN: no more records
            if not chunk:
                break
            for record in chunk.decode(errors="replace").splitlines():
                head, _, text = record.partition(";")
                fields = head.split(",")
                if record.startswith(" ") or len(fields) < 3 or not fields[2].isdigit():
                    continue
                for name, needle in KMSG_MARKS.items():
                    if name not in found and needle in text:
                        found[name] = int(fields[2]) / 1e6
    finally:
        os.close(fd)
    return found


def process_start(stat: Path = Path("/proc/self/stat")) -> float | None:
    """When this process started, in seconds since boot (field 22 of /proc/PID/stat)."""
    try:
        text = stat.read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces: split after its closing parenthesis.
    fields = text.rpartition(")")[2].split()
    return int(fields[19]) / os.sysconf("SC_CLK_TCK")


def report_line(marks: dict[str, float]) -> str:
    parts = [f"{name}={marks[name]:.2f}" for name in FIELDS if name in marks]
    return f"{PREFIX} {' '.join(parts)}"


def parse(text: str) -> dict[str, float] | None:
    """The figures of the first report line in text (a console log), or None."""
    start = text.find(PREFIX)
    if start < 0:
        return None
    rest = text[start + len(PREFIX) :]
    line = rest.splitlines()[0] if rest else ""
    figures: dict[str, float] = {}
    for part in line.split():
        name, _, value = part.partition("=")
        try:
            figures[name] = float(value)
        except ValueError:
            break  # escape sequences or the next output: the line has ended
    return figures


def report(ui_started: float, console: str) -> str | None:
    """The report line for this boot on the live system, once per console (the console
    units restart the installer); None elsewhere (a developer machine, the tool guest)."""
    if not LIVE_MEDIUM.is_dir():
        return None
    marker = STATE_DIR / f"boot-times-{console.replace('/', '_')}"
    try:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        with open(marker, "x"):
            pass
    except OSError:
        return None  # reported already (or /run is not writable)
    marks = kernel_marks()
    started = process_start()
    if started is not None:
        marks["installer"] = started
    marks["ui"] = ui_started
    return report_line(marks)


def now() -> float:
    """CLOCK_MONOTONIC: the kernel log's clock, seconds since boot."""
    return time.monotonic()
