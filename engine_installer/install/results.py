"""What the backend hands back to the screens and the unattended runner."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine_installer.ondisk.vms import VMInfo


@dataclass
class InstallResult:
    action: str  # "install" | "upgrade" | "reinstall"
    disk: str
    version: str
    build: str
    slot: str  # the slot that now boots by default
    previous_version: str = ""  # set for upgrades
    # Local and custom VMs need a manual PV-driver upgrade after an upgrade; shared ones do not.
    vms_needing_pv_upgrade: list[VMInfo] = field(default_factory=list)
    log_path: str = ""
