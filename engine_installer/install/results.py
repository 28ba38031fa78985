"""What a run hands back to the faces: the screens, the unattended runner, the update kit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine_installer.install.report import UpgradeReport


@dataclass
class InstallResult:
    action: str  # install | reinstall | upgrade | downgrade | repair
    disk: str
    version: str
    build: str
    slot: str  # the slot that boots next
    previous_version: str = ""  # what the disk held before (upgrade, downgrade, reinstall)
    report: UpgradeReport | None = None
    log_path: str = ""
    report_path: str = ""  # where the report was saved on the storage partition
    steps: list[str] = field(default_factory=list)  # the "Step i of N" lines that ran

    def to_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["report"] = self.report.to_json() if self.report else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InstallResult:
        data = dict(data)
        report = data.pop("report", None)
        return cls(**data, report=UpgradeReport.from_json(report) if report else None)
