"""Dry-run backend: a recorded machine, the same prepare() and action list, no disk touched.

The recorded snapshot replaces the probe; the run walks the prepared action list with simulated
timing (install/simulate.py: ENGINE_INSTALLER_SIM_SECONDS, ENGINE_INSTALLER_SIM_FAIL), so the
screens show exactly the steps a real run would take. Detection waits
ENGINE_INSTALLER_SIM_DETECT_SECONDS (default 1.5 s) so its indicator can be seen.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from engine_installer.base.errors import UserError
from engine_installer.base.i18n import _
from engine_installer.base.progress import ProgressCallback
from engine_installer.hw.check import HwReport, check_machine
from engine_installer.install.prepare import Prepared
from engine_installer.install.results import InstallResult
from engine_installer.install.simulate import simulate
from engine_installer.machine.snapshot import MachineSnapshot
from engine_installer.ondisk.medium import open_medium
from engine_installer.ondisk.payload import Artifact, Manifest
from engine_installer.tui.backend import dmi_name

log = logging.getLogger("engine_installer.tui")

ROOT_IMAGE_SIZE = 1_342_177_280  # a realistic Engine slot image (1.25 GiB)
RECORDED_SLOT_SIZE = 2 * 1024**3
DETECT_SECONDS = 1.5  # the guide warns detection takes a few seconds; show the indicator


def recorded_manifest(snapshot: MachineSnapshot) -> Manifest:
    """The medium a recorded machine names (media_version), as a manifest prepare() can use."""
    if not snapshot.media_version:
        raise UserError(_('the recorded machine names no media_version: add one, e.g. "5.0"'))
    where = Path("(recorded medium)")
    artifacts = {
        name: Artifact(name, where / f"{name}.img", "0" * 64, size, 0, f"engine/{name}.img")
        for name, size in (("root", ROOT_IMAGE_SIZE), ("kernel", 8 << 20), ("initrd", 32 << 20))
    }
    return Manifest(
        product="Engine",
        version=snapshot.media_version,
        build=snapshot.media_build or "0",
        slot_size=RECORDED_SLOT_SIZE,
        created="",
        artifacts=artifacts,
        directory=where,
        pv_driver=snapshot.media_version,
    )


class SimulatedBackend:
    dry_run = True

    def __init__(self, snapshot: MachineSnapshot, source: Path | None, log_path: Path):
        self.recorded = snapshot
        self.source = source
        self.log_path = log_path

    def media(self) -> Manifest:
        if self.source:  # reading a medium's manifest touches nothing
            return open_medium(self.source).manifest
        return recorded_manifest(self.recorded)

    def machine_name(self) -> str:
        return dmi_name(self.recorded.dmi)

    def hardware(self) -> HwReport:
        return check_machine(self.recorded, media=self.media())

    def snapshot(self) -> MachineSnapshot:
        seconds = os.environ.get("ENGINE_INSTALLER_SIM_DETECT_SECONDS")
        pace = float(os.environ.get("ENGINE_INSTALLER_SIM_SECONDS", "4"))
        time.sleep(float(seconds) if seconds else DETECT_SECONDS * min(1.0, pace / 4))
        return self.recorded

    def apply_keyboard(self, layout: str) -> None:
        log.info("dry-run: would run loadkeys %s", layout)

    def run(self, prepared: Prepared, progress: ProgressCallback) -> InstallResult:
        result = simulate(prepared, progress)
        result.log_path = str(self.log_path)
        return result

    def power(self, what: str) -> str:
        log.info("dry-run: would %s", what)
        return _("dry-run: would {what} now; nothing on this machine was written").format(what=what)

    def save_log(self, prepared: Prepared | None, written: bool) -> str:
        disk = prepared.disk.path if prepared is not None and prepared.disk else ""
        if written and disk:
            where = _("the EFI system partition of {disk}").format(disk=disk)
        else:
            where = _("no disk (nothing was written)")
        log.info("dry-run: the log would be saved to %s", where)
        return _("Dry run: the log stays at {path}; a real run would save it to {where}.").format(
            path=self.log_path, where=where
        )
