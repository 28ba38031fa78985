"""What the backend hands back to the screens and the unattended runner."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

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
    disk_model: str = ""
    disk_serial: str = ""
    # VMs published for a newer Engine that stop running after a confirmed downgrade.
    blocked_vms: list[VMInfo] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        """The result and the upgrade report as plain data (JSON), in the screens' terms."""

        def vms(items: list[VMInfo]) -> list[dict[str, str]]:
            return [{k: v for k, v in asdict(vm).items() if v} for vm in items]

        return {
            "action": self.action,
            "disk": {"path": self.disk, "model": self.disk_model, "serial": self.disk_serial},
            "version": self.version,
            "build": self.build,
            "slot": self.slot,
            "previous_version": self.previous_version,
            "vms_needing_pv_upgrade": vms(self.vms_needing_pv_upgrade),
            "vms_stopped_by_downgrade": vms(self.blocked_vms),
            "log": self.log_path,
        }
