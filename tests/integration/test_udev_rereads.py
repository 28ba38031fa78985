"""udev re-reads a whole disk's partition table whenever a writer closes it (its watch rule):
every partition node is removed and added again. On a busy machine (the live system gives udev
a small CPU share while the installer starts) that comes late, in the middle of an install,
where it used to land on mkfs opening a partition ("No such file or directory"). The run holds
the disk against udev the way systemd documents (a BSD lock on the whole-disk node): a re-reader
that honours the lock, as udev does, never touches the partitions while the install writes."""

from __future__ import annotations

import fcntl
import os
import subprocess
import threading
import time

from diskhelpers import check_disk_tools, marker

from engine_installer.base.progress import ProgressEvent
from engine_installer.install.plan import Action, Plan
from engine_installer.install.runner import run_plan
from engine_installer.ondisk.payload import load_manifest

MiB = 1024 * 1024
DISK = 900 * MiB


class LateRereads:
    """What udev does after a writer closed a whole disk (synthesize_change): take the disk's
    BSD lock without waiting and, when it gets it, re-read the partition table. The loop
    devices here do not scan partitions themselves, so the re-read is done with BLKPG, as
    the kernel's own re-read does it: every partition removed (partx -d), then added (partx
    -a). Over and over, from the moment it is started, to land on every step after it."""

    def __init__(self, disk: str) -> None:
        self.disk = disk
        self.rereads = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        if not self.thread.is_alive() and not self.stopped.is_set():
            self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join(10)

    def _run(self) -> None:
        while not self.stopped.is_set():
            fd = os.open(self.disk, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass
            else:
                subprocess.run(["partx", "-d", self.disk], capture_output=True, check=False)
                subprocess.run(["partx", "-a", self.disk], capture_output=True, check=False)
                self.rereads += 1
            finally:
                os.close(fd)
            time.sleep(0.01)


def test_late_udev_rereads_never_land_on_the_install(make_loop, payloads, tmp_path):
    disk = make_loop(DISK)
    manifest = load_manifest(payloads["5.0"])
    rereader = LateRereads(disk)
    seen_during_run: list[int] = []

    def progress(event: ProgressEvent) -> None:
        if event.phase == "format":  # the table is written: udev's re-read is due any time
            rereader.start()
        seen_during_run.append(rereader.rereads)

    plan = Plan(action=Action.INSTALL, target=disk, eula_accepted=True, lab_override=True)
    try:
        result = run_plan(plan, manifest, progress)
        # Released with the run: the re-reader gets the disk now, as udev would.
        deadline = time.monotonic() + 20
        while rereader.rereads == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        rereader.stop()
    assert rereader.thread.ident is not None, "the re-reader never started"
    assert max(seen_during_run) == 0, "udev's re-read got the disk during the install"
    assert rereader.rereads > 0, "the re-reader never got the disk, even after the run"
    assert (result.version, result.slot) == ("5.0", "A")
    assert marker(disk)["complete"] is True
    check_disk_tools(disk)
