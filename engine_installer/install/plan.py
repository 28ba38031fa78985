"""The one plan: every screen and every answer file fills it; prepare() reads only it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path


class Action(enum.Enum):
    AUTO = "auto"  # install on a blank disk, upgrade an Engine; refuse anything else
    INSTALL = "install"  # erase a disk that holds no Engine and install
    UPGRADE = "upgrade"  # keep VMs and data; the new Engine goes into the inactive slot
    REINSTALL = "reinstall"  # erase the disk, Engine included, and install afresh
    REPAIR = "repair"  # restore a damaged partition table or boot files; keeps everything


@dataclass
class Plan:
    action: Action = Action.AUTO
    target: str | None = None  # a whole-disk device path (or a /dev/disk/by-id link)
    keyboard: str = "us"
    eula_accepted: bool = False
    # A payload directory (holding engine/manifest.json) or an Engine ISO; None = the boot medium.
    source: Path | None = None
    # Installing an older Engine over a newer one must be asked for explicitly.
    allow_downgrade: bool = False
    # Extra kernel arguments for the installed Engine (checked by ondisk.cmdline); the
    # hardware profile's quirks are added by prepare().
    kernel_args: list[str] = field(default_factory=list)
    # Install although the hardware check failed (lab machines); recorded in the log.
    lab_override: bool = False
    # The technician confirmed the summary (an answer file is its own confirmation).
    confirmed: bool = False
    # The target is the disk this Engine runs from (an update kit, engine-update): its active
    # slot and storage partition may be mounted by the running system; the slot being written
    # must not be. Only an upgrade, never a downgrade; the inactive slot, the boot environment,
    # the marker, the slot options and Engine's files on storage are all it writes.
    running_engine: bool = False

    def describe(self) -> str:
        source = str(self.source) if self.source else "boot medium"
        flags = [
            name
            for name, on in (
                ("allow_downgrade", self.allow_downgrade),
                ("lab_override", self.lab_override),
                ("running_engine", self.running_engine),
            )
            if on
        ]
        return (
            f"action={self.action.value} target={self.target} keyboard={self.keyboard} "
            f"eula={'accepted' if self.eula_accepted else 'not accepted'} source={source}"
            + (f" kernel_args={' '.join(self.kernel_args)}" if self.kernel_args else "")
            + "".join(f" {flag}=yes" for flag in flags)
        )
