"""Loop devices for the tests and the benchmarks: created here, always detached.

Each tier attaches only in its own range of loop numbers, so the integration tests, the e2e
tests and the benchmarks can run at the same time without racing each other for a device;
all ranges sit above the low numbers that scripts calling `losetup -f` hit (they race each
other, then detach the name they were given). A device is claimed by `losetup DEVICE FILE`
itself: if another process took it first, that fails and the next number is tried.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

LOOP_CTL_ADD = 0x4C80  # linux/loop.h: create /dev/loopN for a given N
INTEGRATION = range(64, 128)  # tests/integration
BENCH = range(128, 160)  # bench/
E2E = range(160, 224)  # qemu.disks, for tests/e2e


def attach(image: Path, numbers: range, sector_size: int = 512) -> str:
    """/dev/loopN over image, N the first free number of the range."""
    for number in numbers:
        device = f"/dev/loop{number}"
        if not os.path.exists(device):
            with contextlib.suppress(OSError), open("/dev/loop-control", "rb") as ctl:
                fcntl.ioctl(ctl, LOOP_CTL_ADD, number)
        if Path(f"/sys/block/loop{number}/loop/backing_file").exists():
            continue
        cmd = ["losetup", "--sector-size", str(sector_size), device, str(image)]
        if subprocess.run(cmd, capture_output=True, check=False).returncode == 0:
            return device
    raise RuntimeError(f"no free loop device in /dev/loop{numbers.start}-{numbers.stop - 1}")


def detach(device: str) -> None:
    """Unmount what a failed run left mounted from the device, drop its partition nodes
    (BLKPG) so no stale /dev/loopNpM outlives it, then detach it."""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        source, target = line.split()[:2]
        if source == device or source.startswith(device + "p"):
            subprocess.run(["umount", "-l", target], capture_output=True, check=False)
    subprocess.run(["partx", "-d", device], capture_output=True, check=False)
    subprocess.run(["losetup", "-d", device], capture_output=True, check=False)


@contextlib.contextmanager
def loop_device(
    image: Path, numbers: range, sector_size: int = 512, partitions: bool = True
) -> Iterator[str]:
    """A loop device over image for the with block; partitions: add the nodes of the
    partitions its table already has (`partx -a`)."""
    device = attach(image, numbers, sector_size)
    try:
        if partitions:
            subprocess.run(["partx", "-a", device], capture_output=True, check=False)
        yield device
    finally:
        detach(device)
