#!/usr/bin/env python3
"""engine-usb write vs dd on the same unthrottled loop device, side by side in one run. Root.

    sudo .venv/bin/python bench/usb_write.py [--size-mib 1024] [--rounds 5] [--stick]

Goals, each printed beside its figure:
  write phase vs `dd bs=4M oflag=direct conv=fsync` (throughput ratio)         >= 0.95x
  write + verify vs that dd + `dd bs=4M iflag=direct` read-back (time ratio)  <= 1.15x

The loop device sits over a preallocated file, unthrottled: it runs at memory speed, faster
than any stick, so this is where a copy engine's own cost shows. Each round runs dd write, dd
read-back and `engine-usb write --json` (its write_s / verify_s) one after another; times are
medians, each ratio the median of the per-round ratios. The machine is shared: the load is
printed with every round, and both sides of a round run under the same load. --stick adds the
same on the loop device throttled by the blkio cgroup (v1) to USB 3 stick speeds (200 MB/s
write, 400 MB/s read).
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

from bench.loops import load, loop  # noqa: E402
from tests.usb_helpers import make_engine_iso  # noqa: E402

ENGINE_USB = str(Path(sys.executable).with_name("engine-usb"))
BLKIO = Path("/sys/fs/cgroup/blkio")
WRITE_GOAL, PAIR_GOAL = 0.95, 1.15


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


def measure(iso: Path, device: str, rounds: int, wrapper: list[str]) -> dict[str, list[float]]:
    size = iso.stat().st_size
    dd_write = ["dd", f"if={iso}", f"of={device}", "bs=4M", "oflag=direct", "conv=fsync"]
    dd_read = ["dd", f"if={device}", "of=/dev/null", "bs=4M", "iflag=direct,count_bytes"]
    dd_read.append(f"count={size}")
    ours = [ENGINE_USB, "write", str(iso), device, "--yes", "--json", "--allow-non-removable"]
    runs: dict[str, list[float]] = {k: [] for k in ("dd_w", "dd_r", "w", "v", "cmd")}
    timed(dd_write, wrapper)  # warm-up: caches fill, nothing measured
    timed(ours, wrapper)
    for number in range(1, rounds + 1):
        runs["dd_w"].append(timed(dd_write, wrapper)[0])
        runs["dd_r"].append(timed(dd_read, wrapper)[0])
        elapsed, out = timed(ours, wrapper)
        result = json.loads(out.splitlines()[-1])
        assert result["ok"], result
        runs["w"].append(result["write_s"])
        runs["v"].append(result["verify_s"])
        runs["cmd"].append(elapsed)
        print(
            f"  round {number}: dd {runs['dd_w'][-1]:.2f} + {runs['dd_r'][-1]:.2f} s, "
            f"engine-usb {runs['w'][-1]:.2f} + {runs['v'][-1]:.2f} s ({load()})",
            flush=True,
        )
    return runs


def report(name: str, size: int, runs: dict[str, list[float]]) -> bool:
    """Medians of the times; each ratio is the median of the per-round ratios (dd and
    engine-usb ran back to back in a round, under the same load)."""
    m = {key: statistics.median(values) for key, values in runs.items()}
    rounds = list(zip(runs["w"], runs["v"], runs["dd_w"], runs["dd_r"], strict=True))
    writes = sorted(dw / w for w, _v, dw, _dr in rounds)  # throughput ratio: ours / dd's
    pairs = sorted((w + v) / (dw + dr) for w, v, dw, dr in rounds)
    write_ratio, pair_ratio = statistics.median(writes), statistics.median(pairs)
    mb = size / 1e6
    print(f"[{name}] image {size / 2**20:.0f} MiB, {len(rounds)} rounds")
    print(f"  dd write (oflag=direct conv=fsync)   {m['dd_w']:6.2f} s  {mb / m['dd_w']:7.0f} MB/s")
    print(f"  dd read-back (iflag=direct)          {m['dd_r']:6.2f} s  {mb / m['dd_r']:7.0f} MB/s")
    print(f"  engine-usb write phase               {m['w']:6.2f} s  {mb / m['w']:7.0f} MB/s")
    print(f"  engine-usb verify phase              {m['v']:6.2f} s  {mb / m['v']:7.0f} MB/s")
    print(f"  engine-usb whole command             {m['cmd']:6.2f} s  (with ISO check, startup)")
    ok_w, ok_p = write_ratio >= WRITE_GOAL, pair_ratio <= PAIR_GOAL
    print(f"  write throughput vs dd       {write_ratio:5.2f}x (goal >= {WRITE_GOAL}: {_ok(ok_w)})")
    print(f"  write+verify time vs dd pair {pair_ratio:5.2f}x (goal <= {PAIR_GOAL}: {_ok(ok_p)})")
    print(f"  per-round write ratios: {', '.join(f'{r:.2f}' for r in writes)}")
    print(f"  per-round pair ratios:  {', '.join(f'{r:.2f}' for r in pairs)}")
    return ok_w and ok_p


def _ok(flag: bool) -> str:
    return "met" if flag else "MISSED"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="payload size (root.img)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--stick", action="store_true", help="also at USB 3 stick speeds")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench: needs root (loop devices)")
    with tempfile.TemporaryDirectory(prefix="engine-usb-bench-") as tmp:
        iso = make_engine_iso(Path(tmp), root_img_size=args.size_mib * 2**20)
        size = iso.stat().st_size
        all_ok = True
        with loop(Path(tmp, "stick.img"), size + 64 * 2**20, allocate=True) as device:
            print(f"loop device {device}; {load()}", flush=True)
            all_ok &= report("unthrottled loop", size, measure(iso, device, args.rounds, []))
            if args.stick:
                throttle = Throttle(device, 200 * 10**6, 400 * 10**6)
                try:
                    runs = measure(iso, device, args.rounds, throttle.wrapper())
                    all_ok &= report("stick speed 200/400 MB/s", size, runs)
                finally:
                    throttle.close()
            print(f"after: {load()}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
