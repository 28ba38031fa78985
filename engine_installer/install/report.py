"""The upgrade report: what the technician must do with the VMs after the installer is done.

The vendor's guide: after an upgrade, local VMs and custom VM images need a manual PV-driver
upgrade (shared images are updated by Engine itself), and VMs published for a newer Engine do not
run on an older one. The report is decided by prepare() from the detected VMs, shown on the
summary and Finished screens, printed by unattended runs, logged, and written to the storage
partition (engine/reports/<UTC time>-<action>.json) so it outlives the reboot that follows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from engine_installer.base.i18n import _
from engine_installer.base.versions import compare_versions
from engine_installer.ondisk.layout import REPORTS_DIR
from engine_installer.ondisk.vms import VMInfo

PV_UPGRADE_KINDS = ("local", "custom")  # shared images are updated by Engine itself


def will_not_run(vms: list[VMInfo], media_version: str) -> list[VMInfo]:
    """VMs published for an Engine newer than the one being installed."""
    return [vm for vm in vms if _newer(vm.published_for, media_version)]


def needs_pv_upgrade(vms: list[VMInfo], media_pv_driver: str, media_version: str) -> list[VMInfo]:
    """Local and custom VMs whose PV drivers are older than the medium's (and that still run)."""
    blocked = {vm.name for vm in will_not_run(vms, media_version)}
    return [
        vm
        for vm in vms
        if vm.kind in PV_UPGRADE_KINDS
        and vm.name not in blocked
        and _older_driver(vm.pv_driver, media_pv_driver)
    ]


def _newer(version: str, than: str) -> bool:
    try:
        return bool(version) and compare_versions(version, than) > 0
    except ValueError:
        return False


def _older_driver(driver: str, media_driver: str) -> bool:
    """An unknown or unparsable driver version counts as older: better one check too many."""
    if not driver:
        return True
    try:
        return compare_versions(driver, media_driver) < 0
    except Exception:  # noqa: BLE001 - a garbled version in a VM's description
        return True


@dataclass
class UpgradeReport:
    action: str  # install | reinstall | upgrade | downgrade | repair
    disk: str
    from_version: str
    to_version: str
    to_build: str
    media_pv_driver: str
    vms_needing_pv_upgrade: list[VMInfo] = field(default_factory=list)
    vms_that_will_not_run: list[VMInfo] = field(default_factory=list)
    created_at: str = ""

    def to_json(self) -> dict[str, Any]:
        """The file's contents: lists of VM names first (what a reader wants), then details."""
        return {
            "action": self.action,
            "disk": self.disk,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "to_build": self.to_build,
            "media_pv_driver": self.media_pv_driver,
            "created_at": self.created_at,
            "vms_needing_pv_upgrade": [vm.name for vm in self.vms_needing_pv_upgrade],
            "vms_that_will_not_run": [vm.name for vm in self.vms_that_will_not_run],
            "vm_details": [
                asdict(vm) for vm in self.vms_needing_pv_upgrade + self.vms_that_will_not_run
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UpgradeReport:
        details = {vm["name"]: VMInfo(**vm) for vm in data.get("vm_details", [])}

        def vms(key: str) -> list[VMInfo]:
            return [details.get(name) or VMInfo(name, "", "") for name in data.get(key, [])]

        return cls(
            action=data["action"],
            disk=data.get("disk", ""),
            from_version=data.get("from_version", ""),
            to_version=data.get("to_version", ""),
            to_build=data.get("to_build", ""),
            media_pv_driver=data.get("media_pv_driver", ""),
            vms_needing_pv_upgrade=vms("vms_needing_pv_upgrade"),
            vms_that_will_not_run=vms("vms_that_will_not_run"),
            created_at=data.get("created_at", ""),
        )

    def file_name(self) -> str:
        """engine/reports/<UTC time>-<action>.json, e.g. 20261130T101500Z-upgrade.json."""
        stamp = self.created_at.replace("-", "").replace(":", "").replace("+0000", "Z")
        stamp = stamp.replace("+00:00", "Z").split(".")[0]
        return f"{REPORTS_DIR}/{stamp or 'unknown'}-{self.action}.json"

    def lines(self) -> list[str]:
        """Plain lines for the log and unattended output (the screens lay out the same data)."""
        out = []
        if self.vms_needing_pv_upgrade:
            out.append(
                _("VMs needing a manual PV-driver upgrade (older than {driver}):").format(
                    driver=self.media_pv_driver
                )
            )
            out += [
                "  "
                + _("{name} ({kind}, PV drivers {driver})").format(
                    name=vm.name, kind=vm.kind, driver=vm.pv_driver or _("unknown")
                )
                for vm in self.vms_needing_pv_upgrade
            ]
        elif self.action in ("upgrade", "downgrade"):
            out.append(_("No VM needs a manual PV-driver upgrade."))
        if self.vms_that_will_not_run:
            out.append(
                _("VMs published for a newer Engine that will not run on {version}:").format(
                    version=self.to_version
                )
            )
            out += [
                "  "
                + _("{name} ({kind}, published for {version})").format(
                    name=vm.name, kind=vm.kind, version=vm.published_for
                )
                for vm in self.vms_that_will_not_run
            ]
        return out
