"""Bench: install a 1 GiB payload vs dd of the same image, and detection over 4 loop disks.

    sudo .venv/bin/python bench/install.py [--size-mib 1024] [--workdir DIR]

Prints measured figures only. Targets (issue 2): install <= 1.2 x dd + 5 s; detection <= 1 s.
Loop devices are created under a temp dir (or --workdir) and always detached.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine_installer.base.progress import ProgressEvent  # noqa: E402
from engine_installer.install.plan import Action, Plan  # noqa: E402
from engine_installer.install.runner import run_plan  # noqa: E402
from engine_installer.iso.sample_payload import build_sample_payload  # noqa: E402
from engine_installer.machine.detect import detect_installs  # noqa: E402
from engine_installer.machine.probe import probe_disk
from engine_installer.ondisk.layout import (  # noqa: E402
    MiB,
    compute_layout,
    minimum_disk_size,
    partition_path,  # noqa: E402
)
from engine_installer.ondisk.payload import load_manifest  # noqa: E402

LOOP_CTL_ADD = 0x4C80


def sh(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True)


@contextlib.contextmanager
def loop(path: Path, size: int, allocate: bool = False):
    import fcntl

    with open(path, "wb") as handle:
        handle.truncate(size)
        if allocate:
            # A real disk has no sparse-file block allocation: preallocate so neither the
            # installer nor dd pays for it.
            os.posix_fallocate(handle.fileno(), 0, size)
    device = ""
    for number in range(96, 160):  # high numbers: out of the way of `losetup -f` users
        candidate = f"/dev/loop{number}"
        if not os.path.exists(candidate):
            with contextlib.suppress(OSError), open("/dev/loop-control", "rb") as ctl:
                fcntl.ioctl(ctl, LOOP_CTL_ADD, number)
        if Path(f"/sys/block/loop{number}/loop/backing_file").exists():
            continue
        if subprocess.run(["losetup", candidate, str(path)], capture_output=True).returncode == 0:
            device = candidate
            break
    if not device:
        raise SystemExit("no free loop device")
    try:
        yield device
    finally:
        subprocess.run(["partx", "-d", device], capture_output=True)
        subprocess.run(["losetup", "-d", device], capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="slot image size")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("ENGINE_INSTALLER_LOG_DIR", tempfile.mkdtemp(prefix="bench-logs-"))
    with tempfile.TemporaryDirectory(prefix="bench-install-", dir=args.workdir) as tmp:
        work = Path(tmp)
        size = args.size_mib * MiB
        started = time.monotonic()
        manifest_path = build_sample_payload("5.0", work / "big", build="50", pad_to=size)
        small_path = build_sample_payload("4.5", work / "small", build="45")
        print(
            f"payloads built in {time.monotonic() - started:.1f} s " f"(root.img {size // MiB} MiB)"
        )
        big = load_manifest(manifest_path.parent)
        small = load_manifest(small_path.parent)
        disk_size = minimum_disk_size(big.slot_size) + 256 * MiB
        slot_offset = compute_layout(disk_size, big.slot_size)[2].start
        with contextlib.ExitStack() as stack:
            disk = stack.enter_context(loop(work / "disk.img", disk_size, allocate=True))

            def dd() -> float:
                started = time.monotonic()
                sh(
                    "dd",
                    f"if={big.root_image.path}",
                    f"of={disk}",
                    f"seek={slot_offset}",  # exactly where the installer writes slot A
                    "bs=4M",
                    "oflag=direct,seek_bytes",
                    "conv=fsync",
                    "status=none",
                )
                return time.monotonic() - started

            # One unmeasured dd warms the region (preallocated extents get written once, as
            # on a real disk), then dd before and after the install; both are reported.
            dd()
            dd_runs = [dd()]
            phases: dict[str, float] = {}
            opened: dict[str, float] = {}

            def record(event: ProgressEvent) -> None:
                # The runner reports (kind, 0, 1, description) at a step's start and
                # (kind, 1, 1) at its end; byte events in between have total > 1.
                if event.message and event.done == 0:
                    opened[event.phase] = time.monotonic()
                elif event.done == event.total == 1 and event.phase in opened:
                    spent = time.monotonic() - opened.pop(event.phase)
                    phases[event.phase] = phases.get(event.phase, 0.0) + spent

            started = time.monotonic()
            plan = Plan(action=Action.INSTALL, target=disk, eula_accepted=True)
            run_plan(plan, big, record)
            install_s = time.monotonic() - started
            dd_runs.append(dd())
            dd_s = sum(dd_runs) / len(dd_runs)
            print(
                f"install (run_plan, {size // MiB} MiB image, verify + read-back + GRUB): "
                f"{install_s:.2f} s"
            )
            print(
                "  phases: " + ", ".join(f"{name} {spent:.2f} s" for name, spent in phases.items())
            )
            print(
                f"dd bs=4M oflag=direct conv=fsync of the same image: {dd_s:.2f} s "
                f"(mean of {', '.join(f'{t:.2f}' for t in dd_runs)})"
            )
            print(
                f"ratio install/dd: {install_s / dd_s:.2f}x; "
                f"install - 1.2 x dd = {install_s - 1.2 * dd_s:+.2f} s (target <= +5 s)"
            )

            # Detection: the big install, a small install, a foreign disk, an empty disk.
            second = stack.enter_context(loop(work / "d2.img", 1300 * MiB))
            run_plan(Plan(target=second, eula_accepted=True), small)
            foreign = stack.enter_context(loop(work / "d3.img", 1300 * MiB))
            sh("sgdisk", "-n1:0:+100M", foreign)
            sh("partx", "-a", foreign)
            sh("mkfs.ext4", "-q", partition_path(foreign, 1))
            empty = stack.enter_context(loop(work / "d4.img", 1300 * MiB))
            disks = [disk, second, foreign, empty]
            timings = []
            for _ in range(3):
                started = time.monotonic()
                infos = [probe_disk(d) for d in disks]
                probed = time.monotonic()
                found = detect_installs(infos, big)
                done = time.monotonic()
                timings.append((probed - started, done - probed, done - started))
            best = min(timings, key=lambda t: t[2])
            print(
                f"detection over 4 loop disks: probe {best[0]:.3f} s + detect {best[1]:.3f} s "
                f"= {best[2]:.3f} s (best of 3; states "
                f"{', '.join(i.state for i in found)})"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
