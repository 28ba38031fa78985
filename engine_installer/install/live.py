"""The live machine as prepare() sees it: one probe, then detection, after cleaning up what an
earlier installer that was killed left behind."""

from __future__ import annotations

import logging
from pathlib import Path

from engine_installer.disks.mounts import clean_stale_mounts
from engine_installer.install.plan import Plan
from engine_installer.machine.detect import detect_installs
from engine_installer.machine.probe import probe_disk, probe_machine
from engine_installer.machine.snapshot import MachineSnapshot
from engine_installer.ondisk.payload import Manifest

log = logging.getLogger("engine_installer")


def resolve_target(plan: Plan) -> None:
    """Check the plan's target on this machine and name it by its device path.

    A missing path, a partition or something that is not a block device gets its precise
    sentence here (prepare() only knows that the snapshot has no such disk); a stable link
    (/dev/disk/by-id/...) becomes the disk it points at, as the log records."""
    if not plan.target:
        return
    disk = probe_disk(plan.target)
    if disk.path != plan.target:
        log.info("target %s is %s", plan.target, disk.path)
        plan.target = disk.path


def live_snapshot(
    manifest: Manifest | None, source: Path | None = None, only: list[str] | None = None
) -> MachineSnapshot:
    """Probe this machine (or only the named disks) and detect the installs on its disks.

    source is what is being installed (payload directory or ISO): the disk holding it is the
    boot medium, never a target."""
    for leftover in clean_stale_mounts():
        log.info("cleaned up after an earlier installer: %s", leftover)
    snapshot = probe_machine(source=source, only=only)
    snapshot.installs = detect_installs(snapshot.disks, manifest)
    return snapshot
