"""The one interface the screens use to reach the machine, and its live implementation.

Screens call these methods only through InstallerApp.background(), i.e. off the UI thread;
every method may block. The dry-run twin is SimulatedBackend in simulated.py. Both hand the
screens a MachineSnapshot, and the screens ask install.prepare what a choice would do: the rules
live there, not here.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from engine_installer.base.errors import UserError
from engine_installer.base.i18n import _
from engine_installer.base.progress import ProgressCallback

if TYPE_CHECKING:
    # The probing and checking modules are imported where they are first used (screen 2 on):
    # every console's installer imports this module before its first frame.
    from engine_installer.hw.check import HwReport
    from engine_installer.install.prepare import Prepared
    from engine_installer.install.results import InstallResult
    from engine_installer.machine.snapshot import MachineSnapshot
    from engine_installer.ondisk.medium import Medium
    from engine_installer.ondisk.payload import Manifest

log = logging.getLogger("engine_installer.tui")

ONLY_DISKS_ENV = "ENGINE_INSTALLER_DISKS"  # comma-separated: probe only these disks
LIVE_SYSTEM_MARK = Path("/run/live/medium")  # live-boot mounts the boot medium here


class Backend(Protocol):
    dry_run: bool
    log_path: Path

    def media(self) -> Manifest:
        """The Engine on the boot medium (or --source). UserError when there is none."""

    def machine_name(self) -> str:
        """Vendor and model from DMI, e.g. 'Dell Inc. Latitude 7490' (fast)."""

    def boot_origin(self) -> str:
        """How the medium got here when not from a DVD/USB stick: 'Booted from the network
        (PXE) from http://...' (screen 1 and the log say it), else ''."""

    def hardware(self) -> HwReport:
        """The hardware-profile check of this machine."""

    def snapshot(self) -> MachineSnapshot:
        """Probe disks and find Engine installs: slow (seconds)."""

    def apply_keyboard(self, layout: str) -> None:
        """Switch the console keymap now, so later typing uses it."""

    def run(self, prepared: Prepared, progress: ProgressCallback) -> InstallResult:
        """Carry out a confirmed plan, reporting progress; UserError/RefusedError on failure."""

    def power(self, what: str) -> str:
        """'reboot' or 'poweroff'; returns a message when the machine is not really switched."""

    def save_log(self, prepared: Prepared | None, written: bool) -> str:
        """After a failure: copy the log where it outlives the reboot; one sentence saying
        where (written: the run had begun writing the target disk)."""


def _read_dmi(key: str) -> str:
    try:
        return Path("/sys/class/dmi/id", key).read_text().strip()
    except OSError:
        return ""


def dmi_name(dmi: dict[str, str]) -> str:
    """'Lenovo ThinkPad T480' from DMI (Lenovo keeps the marketing name in product_version)."""
    vendor = dmi.get("sys_vendor", "")
    product = dmi.get("product_name", "")
    if vendor.upper() == "LENOVO" and dmi.get("product_version"):
        product = f"{dmi['product_version']} ({product})"
    return " ".join(p for p in (vendor, product) if p) or "unknown machine"


def only_disks() -> list[str] | None:
    """Tests on a shared machine look at their own loop devices and nothing else."""
    return [p for p in os.environ.get(ONLY_DISKS_ENV, "").split(",") if p] or None


class LiveBackend:
    """The real machine: probe, detect, and the runner in a child process."""

    dry_run = False

    def __init__(self, source: Path | None, log_path: Path):
        self.source = source
        self.log_path = log_path
        self._medium: Medium | None = None

    def medium(self) -> Medium:
        if self._medium is None:
            from engine_installer.unattended import source_medium

            self._medium = source_medium(self.source)
        return self._medium

    def media(self) -> Manifest:
        return self.medium().manifest

    def machine_name(self) -> str:
        return dmi_name(
            {key: _read_dmi(key) for key in ("sys_vendor", "product_name", "product_version")}
        )

    def boot_origin(self) -> str:
        if self.source is not None:
            return ""
        from engine_installer.netboot.live import current

        boot = current()
        return boot.describe() if boot else ""

    def hardware(self) -> HwReport:
        from engine_installer.hw.check import check_machine
        from engine_installer.machine.probe import probe_machine

        machine = probe_machine(source=self.medium().location, only=only_disks())
        return check_machine(machine, media=self.media())

    def snapshot(self) -> MachineSnapshot:
        from engine_installer.install.live import live_snapshot

        return live_snapshot(self.media(), source=self.medium().location, only=only_disks())

    def apply_keyboard(self, layout: str) -> None:
        if not shutil.which("loadkeys"):
            raise UserError(_("loadkeys is missing from the live system: install the kbd package"))
        proc = subprocess.run(["loadkeys", layout], capture_output=True, text=True, timeout=20)
        if proc.returncode != 0:
            raise UserError(
                _("loadkeys {layout} failed: {error}").format(
                    layout=layout, error=proc.stderr.strip() or proc.returncode
                )
            )
        log.info("keyboard: loadkeys %s", layout)

    def run(self, prepared: Prepared, progress: ProgressCallback) -> InstallResult:
        from engine_installer.tui.worker import run_in_child

        # The child probes again and must arrive at the same steps the technician confirmed.
        return run_in_child(prepared, self.medium().location, self.log_path, progress)

    def power(self, what: str) -> str:
        if not LIVE_SYSTEM_MARK.is_dir():
            # Started by hand on a workstation (no --dry-run): never switch that machine off.
            log.info("not the live system: %s skipped", what)
            return _("not running on the Engine live system: {what} skipped; exiting").format(
                what=what
            )
        command = {"reboot": ["systemctl", "reboot"], "poweroff": ["systemctl", "poweroff"]}[what]
        if shutil.which("systemctl") is None:
            command = [what]
        log.info("running %s", " ".join(command))
        subprocess.run(command, check=False)
        return ""

    def medium_root(self) -> Path | None:
        """The boot medium's file system (where a log could be kept), if there is one."""
        if LIVE_SYSTEM_MARK.is_dir():
            return LIVE_SYSTEM_MARK
        if self.source is not None and self.source.is_dir():
            return self.source
        return None

    def save_log(self, prepared: Prepared | None, written: bool) -> str:
        from engine_installer.install.failure_log import save_failure_log

        return save_failure_log(self.log_path, prepared, written, self.medium_root())
