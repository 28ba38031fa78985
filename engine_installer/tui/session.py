"""The text UI's state: one typed object that the screens read and edit.

The plan is what an answer file would say; everything else is what the screens learned on
the way (the medium, the hardware check, the probed machine, the install chosen on screen 5,
what prepare() decided, the result or the error). Screens never keep state of their own
across steps, so Back and the error screen can rebuild any screen from the session.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine_installer.hw.check import HwReport
from engine_installer.install.plan import Plan
from engine_installer.install.prepare import Prepared
from engine_installer.install.results import InstallResult
from engine_installer.machine.snapshot import DetectedInstall, MachineSnapshot
from engine_installer.ondisk.payload import Manifest


@dataclass
class Session:
    plan: Plan = field(default_factory=Plan)
    language: str = "en"  # the language the screens are drawn in
    keyboard_chosen: bool = False  # the technician chose plan.keyboard on screen 4
    media: Manifest | None = None  # the Engine on the boot medium (or --source)
    hardware: HwReport | None = None  # the hardware-profile check of this machine
    hardware_checked: bool = False  # the check ran (hardware may still be None: it failed)
    hardware_error: str = ""  # why the check could not run
    machine: MachineSnapshot | None = None  # disks and installs; None until probed
    chosen: DetectedInstall | None = None  # the Engine install screen 5 works on
    prepared: Prepared | None = None  # what prepare() decided for the confirmed plan
    result: InstallResult | None = None  # a finished run
    error: str = ""  # the sentence on the error screen
    error_back: str | None = None  # the step the error screen's Back returns to
    log_saved_to: str = ""  # where the log was saved after a failure ("" when it was not)

    def engine_installs(self) -> list[DetectedInstall]:
        """The Engine installs detection found (foreign systems are not among them)."""
        if self.machine is None:
            return []
        return [i for i in self.machine.installs if i.is_engine]

    def forget_disks(self) -> None:
        """Everything learned from the disks goes: the next step probes them again."""
        self.machine = None
        self.chosen = None
        self.prepared = None
        self.plan.target = None
        self.plan.allow_downgrade = False
        self.plan.confirmed = False
