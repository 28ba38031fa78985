"""Dry-run backend: a recorded machine, the same decisions and progress events, no disk touched.

It replays the phases the disk backend reports for an install or an upgrade, with realistic byte
counts and pacing (ENGINE_INSTALLER_SIM_SECONDS, default 4 s in total; detection takes
ENGINE_INSTALLER_SIM_DETECT_SECONDS, default 1.5 s). ENGINE_INSTALLER_SIM_FAIL
names a phase to fail in, so the error screen can be exercised.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from engine_installer.base.errors import UserError
from engine_installer.base.progress import ProgressCallback, ProgressEvent
from engine_installer.install.plan import Action, Plan
from engine_installer.install.results import InstallResult
from engine_installer.machine.snapshot import MachineSnapshot
from engine_installer.ondisk.layout import slot_other
from engine_installer.ondisk.payload import find_payload_dir, load_manifest
from engine_installer.tui import decisions
from engine_installer.tui.backend import (
    Detection,
    MediaInfo,
    check_hardware_module,
    dmi_name,
    media_or_none,
)

log = logging.getLogger("engine_installer.tui")

ROOT_IMAGE_SIZE = 1_342_177_280  # a realistic Engine slot image (1.25 GiB)
DETECT_SECONDS = 1.5  # the guide warns detection takes a few seconds; show the indicator


def simulated_phases(
    action: Action, plan: Plan, detection: Detection, media: MediaInfo, slot: str
) -> list[tuple[str, int, str]]:
    """(phase, total, message) in the order the disk backend runs them."""
    if action == Action.UPGRADE:
        install = next(i for i in detection.installs if i.disk == plan.target)
        return [
            ("preflight", 4, f"Checking {plan.target} and the Engine {install.version} install"),
            ("inventory", max(len(install.vms), 1), "Reading the VM inventory"),
            ("write-slot", ROOT_IMAGE_SIZE, f"Writing {media.label()} into slot {slot}"),
            ("verify-slot", ROOT_IMAGE_SIZE, f"Verifying slot {slot}"),
            ("bootloader", 3, "Updating the boot loader (BIOS and UEFI)"),
            ("switch-slot", 2, f"Making slot {slot} the boot default"),
            ("marker", 1, "Writing the install marker"),
        ]
    return [
        ("preflight", 4, f"Checking {plan.target}"),
        ("partition", 5, f"Writing the partition table on {plan.target}"),
        ("format", 3, "Creating the EFI and storage filesystems"),
        ("write-slot", ROOT_IMAGE_SIZE, f"Writing {media.label()} into slot {slot}"),
        ("verify-slot", ROOT_IMAGE_SIZE, f"Verifying slot {slot}"),
        ("bootloader", 3, "Installing the boot loader (BIOS and UEFI)"),
        ("keyboard", 1, f"Setting the keyboard layout to {plan.keyboard}"),
        ("marker", 1, "Writing the install marker"),
    ]


class SimulatedBackend:
    dry_run = True

    def __init__(self, snapshot: MachineSnapshot, source: Path | None, log_path: Path):
        self.snapshot = snapshot
        self.source = source
        self.log_path = log_path
        self.seconds = float(os.environ.get("ENGINE_INSTALLER_SIM_SECONDS", "4"))
        self.fail_phase = os.environ.get("ENGINE_INSTALLER_SIM_FAIL", "")

    def media(self) -> MediaInfo:
        if self.source:  # reading a payload's manifest touches nothing
            return MediaInfo.from_manifest(load_manifest(find_payload_dir(self.source)))
        if not self.snapshot.media_version:
            raise UserError('the recorded machine names no media_version: add one, e.g. "5.0"')
        return MediaInfo("Engine", self.snapshot.media_version, self.snapshot.media_build)

    def machine_name(self) -> str:
        return dmi_name(self.snapshot.dmi)

    def hardware(self) -> Any | None:
        return check_hardware_module(lambda: self.snapshot, media_or_none(self))

    def detect(self) -> Detection:
        seconds = os.environ.get("ENGINE_INSTALLER_SIM_DETECT_SECONDS")
        time.sleep(float(seconds) if seconds else DETECT_SECONDS * min(1.0, self.seconds / 4))
        return Detection(list(self.snapshot.disks), list(self.snapshot.installs))

    def apply_keyboard(self, layout: str) -> None:
        log.info("dry-run: would run loadkeys %s", layout)

    def run(self, plan: Plan, detection: Detection, progress: ProgressCallback) -> InstallResult:
        media = self.media()
        decisions.check_plan(
            plan, detection.disks, detection.installs, media.version, media.slot_size
        )
        action = decisions.resolved_action(plan, detection.installs)
        install = next(
            (i for i in decisions.engine_installs(detection.installs) if i.disk == plan.target),
            None,
        )
        slot = slot_other(install.active_slot or "A") if action == Action.UPGRADE else "A"
        phases = simulated_phases(action, plan, detection, media, slot)
        weights = [max(total / ROOT_IMAGE_SIZE, 0.04) for _p, total, _m in phases]
        for (phase, total, message), weight in zip(phases, weights, strict=True):
            seconds = self.seconds * weight / sum(weights)
            steps = max(1, min(total, int(seconds / 0.1)))
            progress(ProgressEvent(phase, 0, total, message))
            for step in range(1, steps + 1):
                time.sleep(seconds / steps)
                if phase == self.fail_phase and step > steps // 2:
                    raise UserError(
                        f"{phase} failed: I/O error writing {plan.target} (simulated fault); "
                        "the disk's previous contents were not switched over"
                    )
                progress(ProgressEvent(phase, total * step // steps, total, message))
        vms = install.vms if install and action == Action.UPGRADE else []
        return InstallResult(
            action=action.value,
            disk=plan.target or "",
            version=media.version,
            build=media.build,
            slot=slot,
            previous_version=install.version if install and action == Action.UPGRADE else "",
            vms_needing_pv_upgrade=decisions.needs_pv_upgrade(vms),
            log_path=str(self.log_path),
        )

    def power(self, what: str) -> str:
        log.info("dry-run: would %s", what)
        return f"dry-run: would {what} now; nothing on this machine was written"
