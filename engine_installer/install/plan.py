"""The one plan: every screen and every answer file fills it; the backend reads only it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from engine_installer.base.errors import UserError


class Action(enum.Enum):
    AUTO = "auto"  # upgrade when an upgradeable Engine is found on the target, else install
    INSTALL = "install"
    UPGRADE = "upgrade"
    REINSTALL = "reinstall"


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
    # Extra kernel arguments for the installed Engine (hardware-profile quirks).
    kernel_args: list[str] = field(default_factory=list)
    # Unattended runs are allowed to proceed without an interactive confirmation.
    confirmed: bool = False

    def check_complete(self) -> None:
        """Refuse to run a plan that a screen or the answer file left unfinished."""
        if not self.eula_accepted:
            raise UserError(
                'the licence agreement was not accepted: set eula = "accepted" in [install]'
            )
        if not self.target:
            raise UserError('no target disk chosen: set target = "/dev/..." in [install]')

    def describe(self) -> str:
        source = str(self.source) if self.source else "boot medium"
        return (
            f"action={self.action.value} target={self.target} keyboard={self.keyboard} "
            f"eula={'accepted' if self.eula_accepted else 'not accepted'} source={source}"
            + (" allow_downgrade=yes" if self.allow_downgrade else "")
        )
