"""Bench: the installer's peak memory, and the smallest VM that boots the medium to screen 1.

    sudo .venv/bin/python bench/memory.py [--size-mib 1024] [--iso FILE] [--skip-vm]

1. Peak RSS of the installer (the text UI, driven in a pseudo-terminal as a technician does):
   a dry run of an upgrade against a recorded machine, and a real fresh install of a
   --size-mib payload on a loop disk. Every process of the installer's tree is sampled
   (/proc/PID/status VmHWM: the kernel's own peak, so nothing between samples is missed);
   the largest is reported, with the tools it runs (mkfs, sgdisk...) listed apart.
2. The smallest QEMU -m (MiB) with which the ISO boots to screen 1 (SeaBIOS, DVD, TCG):
   halving search between 128 and 1024 MiB, to 32 MiB.
Goals (issue 14): peak RSS <= 150 MiB; smallest -m <= 1 GiB.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qemu import loops  # noqa: E402
from tests.tui_term import Term  # noqa: E402

MiB = 1024**2
GOAL_RSS_MIB = 150
GOAL_VM_MIB = 1024


class PeakRss:
    """Samples VmHWM of a process and all its descendants until stopped."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peaks: dict[int, tuple[str, int]] = {}  # pid -> (command, VmHWM bytes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _tree(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rpartition(")")[2].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        tree, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo.extend(children.get(pid, []))
        return tree

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in self._tree():
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                except OSError:
                    continue
                for line in status.splitlines():
                    if line.startswith("VmHWM:"):
                        peak = int(line.split()[1]) * 1024
                        old = self.peaks.get(pid, ("", 0))[1]
                        self.peaks[pid] = (cmd.decode(errors="replace").strip(), max(old, peak))
            time.sleep(0.05)

    def stop(self) -> tuple[int, list[tuple[str, int]]]:
        """(largest installer process peak, [(tool command, peak)])."""
        self._stop.set()
        self._thread.join()
        installer = [p for c, p in self.peaks.values() if "engine_installer" in c]
        tools = sorted(((c, p) for c, p in self.peaks.values() if "engine_installer" not in c),
                       key=lambda item: -item[1])  # fmt: skip
        return max(installer, default=0), tools


def through_keyboard(term: Term) -> None:
    term.wait_for("1/5 Install choice", timeout=60)
    term.press("enter")
    term.wait_for("2/5 Welcome", timeout=60)
    deadline = time.monotonic() + 60
    while "Compatibility" not in term.text() and time.monotonic() < deadline:
        term.pump(0.2)
    if "FAIL" in term.text():  # a build machine is no supported laptop: the logged override
        term.press("up", "space", "down", "right")
    term.press("enter")
    term.wait_for("3/5 Licence agreement")
    term.press("tab", "enter")
    term.wait_for("4/5 Keyboard layout")
    term.press("enter")


def dry_run_peak(work: Path) -> tuple[int, list]:
    term = Term("engine-4.5", work / "dry-run.log")
    meter = PeakRss(term.child.pid)
    try:
        through_keyboard(term)
        term.wait_for("An Engine installation was found", timeout=60)
        term.press("enter")
        term.wait_for("Summary")
        term.press("tab", "enter")
        term.wait_for("Upgraded", timeout=60)
        term.press("tab", "enter")  # Power off (dry run: nothing happens)
        term.finish(timeout=30)
    finally:
        term.close()
    return meter.stop()


def install_peak(work: Path, size_mib: int) -> tuple[int, list]:
    from engine_installer.iso.sample_payload import build_sample_payload

    payload = build_sample_payload("5.0", work / "payload", build="50", pad_to=size_mib * MiB)
    image = work / "laptop.img"
    with open(image, "wb") as handle:
        handle.truncate(2 * size_mib * MiB + 1024 * MiB)
    logs = work / "logs"
    logs.mkdir()
    bin_dir = work / "bin"  # loadkeys would change this machine's console keymap
    bin_dir.mkdir()
    (bin_dir / "loadkeys").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "loadkeys").chmod(0o755)
    with loops.loop_device(image, loops.BENCH) as disk:
        env = {
            "ENGINE_INSTALLER_DISKS": disk,
            "ENGINE_INSTALLER_LOG_DIR": str(logs),
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
        }
        term = Term("", work / "unused.log", "--source", str(payload.parent), live=True, env=env)
        meter = PeakRss(term.child.pid)
        try:
            through_keyboard(term)
            term.wait_for("5/5 Target disk", timeout=120)
            term.press("enter")
            term.wait_for("WILL BE ERASED")
            term.press("tab", "enter")
            term.wait_for("Installed Engine 5.0", timeout=900)
            term.press("tab", "enter")  # Power off: skipped off the live system
            term.finish(timeout=60)
        finally:
            term.close()
        return meter.stop()


def smallest_memory(iso: Path, work: Path) -> tuple[int, dict[int, str]]:
    """Halving search for the smallest -m (MiB, to 32) that reaches screen 1."""
    from qemu.boot_times import boot_to_screens
    from qemu.harness import HarnessError

    tried: dict[int, str] = {}
    started = time.monotonic()
    reference, _ = boot_to_screens(iso, "bios", "dvd", work / "m1024", memory_mb=1024,
                                   laptop_screen=False)  # fmt: skip
    tried[1024] = f"screen 1 after {reference.total:.0f} s"
    # A machine short of memory slows down before it fails: allow three times the time.
    timeout = max(300.0, 3 * (time.monotonic() - started))
    good, bad = 1024, 128
    while good - bad > 32:
        mem = (good + bad) // 2 // 16 * 16
        try:
            times, _ = boot_to_screens(iso, "bios", "dvd", work / f"m{mem}", memory_mb=mem,
                                       timeout=timeout, laptop_screen=False)  # fmt: skip
            tried[mem] = f"screen 1 after {times.total:.0f} s"
            good = mem
        except HarnessError as err:
            tried[mem] = f"no screen 1 ({str(err).splitlines()[0][:60]})"
            bad = mem
        print(f"  -m {mem}: {tried[mem]}", flush=True)
    return good, tried


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="payload size, MiB")
    parser.add_argument("--iso", type=Path, help="the installer ISO (default: build one)")
    parser.add_argument("--skip-vm", action="store_true", help="skip the QEMU memory search")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("error: needs root (loop devices, QEMU disks): run with sudo")
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        work = Path(tmp)
        peak, tools = dry_run_peak(work)
        print(f"dry run (upgrade on a recorded machine, text UI): installer peak RSS "
              f"{peak / MiB:.0f} MiB (goal <= {GOAL_RSS_MIB} MiB)", flush=True)  # fmt: skip
        (work / "install").mkdir()
        peak, tools = install_peak(work / "install", args.size_mib)
        print(f"real install ({args.size_mib} MiB payload, loop disk, text UI): installer peak "
              f"RSS {peak / MiB:.0f} MiB (goal <= {GOAL_RSS_MIB} MiB)")  # fmt: skip
        if tools:
            top = ", ".join(f"{c.split()[0].rsplit('/', 1)[-1]} {p / MiB:.0f}"
                            for c, p in tools[:3])  # fmt: skip
            print(f"  largest tools it ran (MiB): {top}", flush=True)
        if args.skip_vm:
            return 0
        if args.iso is None:
            sys.path.insert(0, str(ROOT / "bench"))
            from boot import build_iso

            (work / "iso").mkdir()
            iso = build_iso(work / "iso")
        else:
            iso = args.iso
        print("smallest VM memory that reaches screen 1 (SeaBIOS, DVD, TCG):", flush=True)
        mem, tried = smallest_memory(iso, work / "vm")
        print(f"smallest -m: {mem} MiB (goal <= {GOAL_VM_MIB} MiB); tried "
              + ", ".join(f"{m}: {r}" for m, r in sorted(tried.items())))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
