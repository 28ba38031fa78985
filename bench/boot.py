"""Bench: QEMU start to the installer's screen 1 (TCG), BIOS/UEFI x DVD/USB, against a reference.

    sudo .venv/bin/python bench/boot.py [--iso FILE] [--runs 3] [--memory 2048]

The reference, measured in the same run: the same Debian kernel as the medium's (/live/vmlinuz)
booting a busybox initramfs to a shell (direct kernel boot; the same q35 machine, memory and
TCG). Runs are interleaved (the reference, then each cell, then again) so the machine's load
weighs on all alike; each figure is the median of --runs runs. For each cell it prints where the
time went (qemu/boot_times.py), its ratio to the reference and the goals: <= 30 s, <= 10x.
Screen 1 is the serial console's (the lab's); the laptop's own screen (tty1's installer on the
VGA console, read back from QEMU) is timed too, to within about a second.
Without --iso the ISO is built from the cached live base and a sample payload (root).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qemu.boot_times import PHASES, BootTimes, boot_to_screens  # noqa: E402
from qemu.harness import VM  # noqa: E402

CELLS = [("bios", "dvd"), ("bios", "usb"), ("uefi", "dvd"), ("uefi", "usb")]
NAMES = {"bios": "SeaBIOS", "uefi": "OVMF"}
GOAL_SECONDS = 30.0
GOAL_RATIO = 10.0
SHELL_MARK = "@@REFERENCE-SHELL"
INIT = f"""#!/bin/sh
mount -t proc proc /proc
echo {SHELL_MARK}
exec sh
"""


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def build_iso(work: Path) -> Path:
    from engine_installer.iso.builder import build_iso as build
    from engine_installer.iso.sample_payload import build_sample_payload

    os.environ.setdefault("SOURCE_DATE_EPOCH", "1700000000")
    payload = build_sample_payload(version="5.0", out=work / "payload").parent
    iso = work / "engine-5.0.iso"
    build(payload, iso, say=lambda _line: None)
    return iso


def medium_kernel(iso: Path, target: Path) -> Path:
    """The kernel the medium boots (/live/vmlinuz): the reference runs the very same one."""
    import pycdlib

    reader = pycdlib.PyCdlib()
    reader.open(str(iso))
    try:
        reader.get_file_from_iso(str(target), rr_path="/live/vmlinuz")
    finally:
        reader.close()
    return target


def busybox_initramfs(work: Path) -> Path:
    """/init: a busybox shell that says it is up, then stays as the console's shell."""
    root = work / "reference-root"
    for name in ("bin", "proc", "dev"):
        (root / name).mkdir(parents=True, exist_ok=True)
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    for applet in ("sh", "mount", "echo"):
        (root / "bin" / applet).unlink(missing_ok=True)
        (root / "bin" / applet).symlink_to("busybox")
    (root / "init").write_text(INIT)
    (root / "init").chmod(0o755)
    image = work / "reference-initramfs.cpio"
    files = subprocess.run(["find", "."], cwd=root, capture_output=True, check=True).stdout
    with open(image, "wb") as out:
        subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=root, input=files,
                       stdout=out, check=True)  # fmt: skip
    return image


def reference_boot(kernel: Path, initramfs: Path, workdir: Path, memory_mb: int) -> float:
    """QEMU start to the busybox shell, seconds."""
    vm = VM(disk=None, memory_mb=memory_mb, workdir=workdir, kernel=kernel, initrd=initramfs,
            append="console=ttyS0 quiet loglevel=3", usb=True)  # fmt: skip
    with vm:
        vm.wait_for(SHELL_MARK + r"\s", timeout=300)
        return vm.elapsed


def median_times(runs: list[BootTimes]) -> BootTimes:
    fields = [*PHASES, "total"]
    return BootTimes(**{f: statistics.median(getattr(r, f) for r in runs) for f in fields})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iso", type=Path, help="the installer ISO (default: build one)")
    parser.add_argument("--runs", type=int, default=3, help="runs of every cell (median)")
    parser.add_argument("--memory", type=int, default=2048, help="VM memory, MiB")
    parser.add_argument("--workdir", type=Path, help="keep logs here (default: a temp dir)")
    args = parser.parse_args()
    if os.geteuid() != 0 and args.iso is None:
        print("error: building the ISO needs root: run as root or pass --iso FILE")
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-boot-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        iso = args.iso or build_iso(work)
        kernel = medium_kernel(iso, work / "vmlinuz")
        initramfs = busybox_initramfs(work)
        print(f"ISO {iso} ({iso.stat().st_size / 1e6:.0f} MB); TCG, q35, {args.memory} MiB, "
              f"{args.runs} runs; load before {load()}", flush=True)  # fmt: skip
        reference: list[float] = []
        cells: dict[tuple[str, str], list[BootTimes]] = {cell: [] for cell in CELLS}
        screens: dict[tuple[str, str], list[float]] = {cell: [] for cell in CELLS}
        started = time.monotonic()
        for run in range(args.runs):
            seconds = reference_boot(kernel, initramfs, work / f"ref-{run}", args.memory)
            reference.append(seconds)
            print(f"run {run}: reference shell {seconds:.1f} s", flush=True)
            for firmware, media in CELLS:
                times, screen = boot_to_screens(iso, firmware, media,
                                                work / f"{firmware}-{media}-{run}",
                                                memory_mb=args.memory)  # fmt: skip
                cells[(firmware, media)].append(times)
                laptop = "never" if screen is None else f"{screen:.1f} s"
                if screen is not None:
                    screens[(firmware, media)].append(screen)
                print(f"run {run}: {NAMES[firmware]} {media.upper()}: {times.summary()}; "
                      f"laptop screen {laptop}", flush=True)  # fmt: skip
        ref = statistics.median(reference)
        print(f"\nmedians of {args.runs} runs ({time.monotonic() - started:.0f} s in all; "
              f"load after {load()})")  # fmt: skip
        print(f"reference: the medium's kernel + busybox initramfs to a shell: {ref:.1f} s")
        head = "".join(f"{p:>10}" for p in PHASES)
        print(f"{'cell':<14}{'screen 1':>9}{'ratio':>8}  {'goal':<16}{head}{'laptop':>9}")
        for (firmware, media), runs in cells.items():
            m = median_times(runs)
            ratio = m.total / ref
            met = m.total <= GOAL_SECONDS and ratio <= GOAL_RATIO
            goal = f"<=30 s <=10x {'ok' if met else 'MISSED'}"
            phases = "".join(f"{getattr(m, p):>10.1f}" for p in PHASES)
            shown = screens[(firmware, media)]
            laptop = f"{statistics.median(shown):>8.1f}s" if shown else f"{'never':>9}"
            print(f"{NAMES[firmware] + ' ' + media.upper():<14}{m.total:>8.1f}s{ratio:>7.1f}x  "
                  f"{goal:<16}{phases}{laptop}")  # fmt: skip
        print("goals: screen 1 <= 30 s each; <= 10x the reference (issue 14)")
        print(
            "screen 1: the serial console's; laptop: QEMU start to tty1's installer on the "
            "VGA screen"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
