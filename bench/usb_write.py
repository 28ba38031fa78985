#!/usr/bin/env python3
"""engine-usb write vs dd on the same loop device, in one run (issue 6). Needs root.

    sudo .venv/bin/python bench/usb_write.py [--size-mib 1024] [--rounds 3] [--mode both]

Targets: the write phase runs at >= 0.95x dd's throughput (`dd bs=4M oflag=direct conv=fsync`),
and write+verify takes <= 1.10x the time of that dd plus a `dd iflag=direct` read-back.

Two device speeds, because a loop device over a page-cached file is far faster than any stick:
  stick  the loop device throttled with the blkio cgroup to USB-3-stick speeds (default 200 MB/s
         write, 400 MB/s read), applied to dd and engine-usb alike: the case the targets are for.
  raw    the unthrottled loop device (memory speed, several GB/s): CPU-bound, so it shows the
         cost of hashing (SHA-256 runs at ~2 GB/s on one core here) that a real stick hides.
Each figure is the median of --rounds runs, dd and engine-usb alternating.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.usb_helpers import make_engine_iso  # noqa: E402

ENGINE_USB = str(Path(sys.executable).with_name("engine-usb"))
BLKIO = Path("/sys/fs/cgroup/blkio")


def timed(cmd: list[str], wrapper: list[str]) -> tuple[float, str]:
    started = time.monotonic()
    done = subprocess.run(wrapper + cmd, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed: {done.stderr.strip()}")
    return elapsed, done.stdout


class Throttle:
    """A blkio (cgroup v1) group limiting one device's bandwidth for the commands run in it."""

    def __init__(self, device: str, write_bps: int, read_bps: int) -> None:
        st = os.stat(device)
        devnum = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
        self.path = BLKIO / f"engine-usb-bench-{os.getpid()}"
        self.path.mkdir()
        (self.path / "blkio.throttle.write_bps_device").write_text(f"{devnum} {write_bps}\n")
        (self.path / "blkio.throttle.read_bps_device").write_text(f"{devnum} {read_bps}\n")

    def wrapper(self) -> list[str]:
        # Join the group, then exec the command: every thread it starts stays in the group.
        return ["sh", "-c", f'echo $$ > {self.path}/cgroup.procs && exec "$@"', "sh"]

    def close(self) -> None:
        self.path.rmdir()


def measure(iso: Path, device: str, rounds: int, wrapper: list[str]) -> dict[str, float]:
    size = iso.stat().st_size
    dd_write = ["dd", f"if={iso}", f"of={device}", "bs=4M", "oflag=direct", "conv=fsync"]
    dd_read = ["dd", f"if={device}", "of=/dev/null", "bs=4M", "iflag=direct,count_bytes"]
    dd_read.append(f"count={size}")
    ours = [ENGINE_USB, "write", str(iso), device, "--yes", "--json", "--allow-non-removable"]
    runs: dict[str, list[float]] = {k: [] for k in ("dd_w", "dd_r", "w", "v", "cmd")}
    timed(dd_write, wrapper)  # warm-up: the backing file's blocks get allocated, caches fill
    for _ in range(rounds):
        runs["dd_w"].append(timed(dd_write, wrapper)[0])
        runs["dd_r"].append(timed(dd_read, wrapper)[0])
        elapsed, out = timed(ours, wrapper)
        result = json.loads(out.splitlines()[-1])
        assert result["ok"], result
        runs["w"].append(result["write_s"])
        runs["v"].append(result["verify_s"])
        runs["cmd"].append(elapsed)
    return {key: statistics.median(values) for key, values in runs.items()}


def report(name: str, size: int, m: dict[str, float]) -> bool:
    mb = size / 1e6
    write_ratio = m["dd_w"] / m["w"]  # throughput ratio: ours / dd's
    pair_ratio = (m["w"] + m["v"]) / (m["dd_w"] + m["dd_r"])
    print(f"[{name}] image {size / 2**20:.0f} MiB")
    print(f"  dd write (oflag=direct conv=fsync)   {m['dd_w']:6.2f} s  {mb / m['dd_w']:7.0f} MB/s")
    print(f"  dd read-back (iflag=direct)          {m['dd_r']:6.2f} s  {mb / m['dd_r']:7.0f} MB/s")
    print(f"  engine-usb write phase               {m['w']:6.2f} s  {mb / m['w']:7.0f} MB/s")
    print(f"  engine-usb verify phase              {m['v']:6.2f} s  {mb / m['v']:7.0f} MB/s")
    print(f"  engine-usb whole command             {m['cmd']:6.2f} s  (with ISO check, startup)")
    ok_w, ok_p = write_ratio >= 0.95, pair_ratio <= 1.10
    print(f"  write throughput vs dd      {write_ratio:5.2f}x  (target >= 0.95: {_ok(ok_w)})")
    print(f"  write+verify time vs dd pair {pair_ratio:5.2f}x  (target <= 1.10: {_ok(ok_p)})")
    return ok_w and ok_p


def _ok(flag: bool) -> str:
    return "met" if flag else "MISSED"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="payload size (root.img)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mode", choices=("stick", "raw", "both"), default="both")
    parser.add_argument("--write-mbps", type=int, default=200, help="stick mode write limit")
    parser.add_argument("--read-mbps", type=int, default=400, help="stick mode read limit")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench: needs root (loop devices)")
    with tempfile.TemporaryDirectory(prefix="engine-usb-bench-") as tmp:
        iso = make_engine_iso(Path(tmp), root_img_size=args.size_mib * 2**20)
        size = iso.stat().st_size
        backing = Path(tmp, "stick.img")
        with open(backing, "wb") as handle:
            handle.truncate(size + 64 * 2**20)
        device = subprocess.run(
            ["losetup", "--find", "--show", str(backing)], capture_output=True, text=True
        ).stdout.strip()
        if not device:
            sys.exit("bench: no loop device")
        all_ok = True
        try:
            print(f"loop device {device}, {args.rounds} rounds, medians")
            if args.mode in ("raw", "both"):
                all_ok &= report("raw loop", size, measure(iso, device, args.rounds, []))
            if args.mode in ("stick", "both"):
                throttle = Throttle(device, args.write_mbps * 10**6, args.read_mbps * 10**6)
                try:
                    name = f"stick speed {args.write_mbps}/{args.read_mbps} MB/s"
                    m = measure(iso, device, args.rounds, throttle.wrapper())
                    all_ok &= report(name, size, m)
                finally:
                    throttle.close()
        finally:
            subprocess.run(["losetup", "-d", device], check=False)
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
