"""The one interface the screens use to reach the machine, and its live implementation.

Screens call these methods only through InstallerApp.background(), i.e. off the UI thread;
every method may block. The dry-run twin is SimulatedBackend in simulated.py.
"""

from __future__ import annotations

import inspect
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from engine_installer.base.errors import UserError
from engine_installer.base.progress import ProgressCallback
from engine_installer.install.plan import Plan
from engine_installer.install.results import InstallResult
from engine_installer.machine.snapshot import DetectedInstall, DiskInfo
from engine_installer.ondisk.payload import Manifest, find_payload_dir, load_manifest
from engine_installer.tui import decisions

log = logging.getLogger("engine_installer.tui")

DEFAULT_MEDIUM = Path("/run/live/medium/engine")
ONLY_DISKS_ENV = "ENGINE_INSTALLER_DISKS"  # comma-separated: probe only these disks
LIVE_SYSTEM_MARK = Path("/run/live/medium")  # live-boot mounts the boot medium here
DEFAULT_SLOT_SIZE = 2 * 1024**3  # used when no manifest says otherwise (recorded machines)


@dataclass
class MediaInfo:
    product: str
    version: str
    build: str
    slot_size: int = DEFAULT_SLOT_SIZE
    manifest: Manifest | None = None

    def label(self) -> str:
        return f"{self.product} {self.version}" + (f" (build {self.build})" if self.build else "")

    @property
    def secure_boot(self) -> bool | None:
        """Whether this Engine boots with Secure Boot on (None: no manifest to say)."""
        return self.manifest.secure_boot if self.manifest is not None else None

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> MediaInfo:
        return cls(manifest.product, manifest.version, manifest.build, manifest.slot_size, manifest)


@dataclass
class Detection:
    disks: list[DiskInfo] = field(default_factory=list)
    installs: list[DetectedInstall] = field(default_factory=list)


class Backend(Protocol):
    dry_run: bool
    log_path: Path

    def media(self) -> MediaInfo:
        """The Engine on the boot medium (or --source). UserError when there is none."""

    def machine_name(self) -> str:
        """Vendor and model from DMI, e.g. 'Dell Inc. Latitude 7490' (fast)."""

    def hardware(self) -> Any | None:
        """The hardware-profile check (HwReport), or None while the hw module is absent."""

    def detect(self) -> Detection:
        """Probe disks and find Engine installs: slow (seconds)."""

    def apply_keyboard(self, layout: str) -> None:
        """Switch the console keymap now, so later typing uses it."""

    def run(self, plan: Plan, detection: Detection, progress: ProgressCallback) -> InstallResult:
        """Carry out a confirmed plan, reporting progress; UserError/RefusedError on failure."""

    def power(self, what: str) -> str:
        """'reboot' or 'poweroff'; returns a message when the machine is not really switched."""


def check_hardware_module(snapshot_factory: Any, media: MediaInfo | None = None) -> Any | None:
    """Run the hardware check when the hw package provides it (guarded: it may not be merged);
    with the medium's Engine, Secure Boot is checked against what that Engine boots with."""
    try:
        from engine_installer.hw.check import check_machine
    except ImportError:
        return None
    if media is None:
        return check_machine(snapshot_factory())
    return check_machine(
        snapshot_factory(), engine=media.label(), engine_secure_boot=media.secure_boot
    )


def media_or_none(backend: Any) -> MediaInfo | None:
    try:
        return backend.media()
    except UserError:
        return None  # the welcome screen says what is wrong with the medium elsewhere


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


def _with_source(func: Any, source: dict[str, Path]) -> Any:
    """func with source= bound when it takes one (the probe's boot-medium hint)."""
    if source and "source" in inspect.signature(func).parameters:
        return lambda *args: func(*args, **source)
    return func


class LiveBackend:
    """The real machine: probe, detect and run_plan from the disk backend."""

    dry_run = False

    def __init__(self, source: Path | None, log_path: Path):
        self.source = source
        self.log_path = log_path
        self._media: MediaInfo | None = None

    def media(self) -> MediaInfo:
        if self._media is None:
            medium = self.source or Path(os.environ.get("ENGINE_MEDIUM_DIR", DEFAULT_MEDIUM))
            self._media = MediaInfo.from_manifest(load_manifest(find_payload_dir(medium)))
        return self._media

    def machine_name(self) -> str:
        return dmi_name(
            {key: _read_dmi(key) for key in ("sys_vendor", "product_name", "product_version")}
        )

    def hardware(self) -> Any | None:
        def live_snapshot() -> Any:
            from engine_installer.hw import probe

            # The hw engineer's entry point; accept the likely names until it is merged.
            for name in ("probe_machine", "probe_snapshot", "probe"):
                func = getattr(probe, name, None)
                if callable(func):
                    return func()
            raise ImportError("engine_installer.hw.probe has no probe function")

        try:
            return check_hardware_module(live_snapshot, media_or_none(self))
        except ImportError:
            return None

    def detect(self) -> Detection:
        from engine_installer.machine import probe
        from engine_installer.machine.detect import detect_installs

        manifest = self.media().manifest
        source = {"source": manifest.directory} if manifest is not None else {}
        only = [p for p in os.environ.get(ONLY_DISKS_ENV, "").split(",") if p]
        if only:  # tests on a shared machine: look at their own loop devices and nothing else
            disks = [_with_source(probe.probe_disk, source)(path) for path in only]
        else:
            # The probe recognises the boot medium by the payload's location.
            disks = _with_source(probe.probe_disks, source)()
        return Detection(disks, detect_installs(disks, manifest))

    def apply_keyboard(self, layout: str) -> None:
        if not shutil.which("loadkeys"):
            raise UserError("loadkeys is missing from the live system: install the kbd package")
        proc = subprocess.run(["loadkeys", layout], capture_output=True, text=True, timeout=20)
        if proc.returncode != 0:
            raise UserError(f"loadkeys {layout} failed: {proc.stderr.strip() or proc.returncode}")
        log.info("keyboard: loadkeys %s", layout)

    def run(self, plan: Plan, detection: Detection, progress: ProgressCallback) -> InstallResult:
        from engine_installer.tui.worker import run_in_child

        media = self.media()
        # Same refusals as the dry run, before the runner (which runs its own preflight).
        decisions.check_plan(
            plan, detection.disks, detection.installs, media.version, media.slot_size
        )
        assert media.manifest is not None
        # disks.runner.run_plan(plan, manifest, progress), in a child without our terminal.
        return run_in_child(plan, media.manifest.directory, self.log_path, progress)

    def power(self, what: str) -> str:
        if not LIVE_SYSTEM_MARK.is_dir():
            # Started by hand on a workstation (no --dry-run): never switch that machine off.
            log.info("not the live system: %s skipped", what)
            return f"not running on the Engine live system: {what} skipped; exiting"
        command = {"reboot": ["systemctl", "reboot"], "poweroff": ["systemctl", "poweroff"]}[what]
        if shutil.which("systemctl") is None:
            command = [what]
        log.info("running %s", " ".join(command))
        subprocess.run(command, check=False)
        return ""
