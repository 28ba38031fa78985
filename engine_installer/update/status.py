"""The update status of an Engine, in the management guide's words, kept on its storage.

engine/update-status.json on the storage partition holds the state word, the kit, the times and
the reason for a failure; it is rewritten atomically (write, fsync, rename, fsync the directory)
at every transition, so a power cut leaves the old state or the new one. The state after a
reboot is derived, not hoped for: reconcile() compares the file with what the disk's boot
environment and install marker say happened (docs/update-kit.md has the whole table).

    (blank)                      no update in progress or completed
    Pending                      a kit is staged (engine/updates/) and waits for `apply`
    Signalled                    the kit is being checked or installed
    Installed (Reboot Required)  the new Engine waits in the inactive slot for a restart
    Failed                       checking or installing failed; `reason` says why
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine_installer.disks.files import atomic_write
from engine_installer.machine.snapshot import DetectedInstall
from engine_installer.ondisk.layout import UPDATE_STATUS_PATH
from engine_installer.ondisk.marker import now

BLANK = ""
PENDING = "Pending"
SIGNALLED = "Signalled"
INSTALLED = "Installed (Reboot Required)"
FAILED = "Failed"
STATES = (BLANK, PENDING, SIGNALLED, INSTALLED, FAILED)
FORMAT = 1


@dataclass
class Kit:
    file: str  # the kit's path; relative (engine/updates/...): staged on the storage partition
    version: str = ""
    build: str = ""
    signer: str = ""  # the certificate subject that signed it, once checked


@dataclass
class Engine:
    version: str = ""
    build: str = ""
    slot: str = ""


@dataclass
class UpdateStatus:
    status: str = BLANK
    reason: str = ""  # Failed: one sentence, what failed and what to do
    kit: Kit | None = None
    engine: Engine = field(default_factory=Engine)  # the Engine that boots today
    target_slot: str = ""  # where the kit's Engine goes (the inactive slot)
    step: str = ""  # Signalled: the "Step i of N: title" being run
    report: str = ""  # the upgrade report of the last apply, on the storage partition
    times: dict[str, str] = field(default_factory=dict)  # staged, started, installed, ...

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        return {"format": FORMAT, **data}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UpdateStatus:
        kit = data.get("kit")
        status = data.get("status", BLANK)
        if status not in STATES:
            raise ValueError(f"unknown status {status!r}")
        return cls(
            status=status,
            reason=str(data.get("reason", "")),
            kit=Kit(**kit) if isinstance(kit, dict) else None,
            engine=Engine(**(data.get("engine") or {})),
            target_slot=str(data.get("target_slot", "")),
            step=str(data.get("step", "")),
            report=str(data.get("report", "")),
            times={str(k): str(v) for k, v in (data.get("times") or {}).items()},
        )

    def moved(self, status: str, reason: str = "", **stamp: bool) -> UpdateStatus:
        """This status in a new state word, with the transition's time recorded."""
        times = dict(self.times, updated=now())
        for name, on in stamp.items():
            if on:
                times[name] = times["updated"]
        return UpdateStatus(
            status=status,
            reason=reason,
            kit=self.kit,
            engine=self.engine,
            target_slot=self.target_slot,
            step=self.step if status == SIGNALLED else "",
            report=self.report,
            times=times,
        )


def status_path(storage: Path) -> Path:
    return storage / UPDATE_STATUS_PATH


def read_status(storage: Path) -> tuple[UpdateStatus, str]:
    """The status on the mounted storage partition, and a problem note ("" when it read fine).
    A missing file is blank; an unreadable one is reported and treated as blank."""
    path = status_path(storage)
    try:
        data = json.loads(path.read_text())
        return UpdateStatus.from_json(data), ""
    except FileNotFoundError:
        return UpdateStatus(), ""
    except (OSError, ValueError, TypeError, AttributeError) as err:
        return UpdateStatus(), f"{UPDATE_STATUS_PATH} was unreadable ({err}) and is rewritten"


def write_status(storage: Path, status: UpdateStatus) -> None:
    """write, fsync, rename, fsync the directory: the old state or the new one, never half."""
    text = json.dumps(status.to_json(), indent=2) + "\n"
    atomic_write(status_path(storage), text.encode())


# --- what the disk says happened ------------------------------------------------------------


def engine_of(install: DetectedInstall | None) -> Engine:
    """The Engine that boots without a trial: the active slot's."""
    if install is None or not install.active_slot:
        return Engine()
    entry = install.slots.get(install.active_slot)
    if entry is None:
        return Engine(install.version, install.build, install.active_slot)
    return Engine(entry.version, entry.build, install.active_slot)


def _slot_holds_kit(install: DetectedInstall, slot: str, kit: Kit | None) -> bool:
    entry = install.slots.get(slot)
    return bool(kit and entry and entry.version == kit.version and entry.build == kit.build)


def reconcile(status: UpdateStatus, install: DetectedInstall | None) -> UpdateStatus:
    """The status as the disk proves it, after a reboot or an interrupted apply (call it only
    when no apply runs). Pure: the caller writes the result when it differs."""
    if install is None or not install.active_slot or status.status in (BLANK, PENDING):
        return status
    target = status.target_slot
    booted_kit = (
        target
        and install.active_slot == target
        and not install.trial_slot
        and _slot_holds_kit(install, target, status.kit)
    )
    if booted_kit:
        # The new slot booted and marked itself good (whatever the file said before).
        done = status.moved(BLANK, completed=True)
        done.engine = engine_of(install)
        return done
    if status.status == SIGNALLED:
        return status.moved(FAILED, _interrupted(status, install), failed=True)
    fell_back = target and not install.trial_slot and install.active_slot != target
    if status.status == INSTALLED and fell_back:
        old = engine_of(install)
        kit = status.kit.version if status.kit else "the new Engine"
        reason = f"Engine {kit} did not start; Engine {old.version} is running again"
        failed = status.moved(FAILED, reason, failed=True)
        failed.engine = old
        return failed
    return status


def _interrupted(status: UpdateStatus, install: DetectedInstall) -> str:
    """Why a Signalled status outlived its apply (a power cut, a kill): one sentence."""
    kit = f"Engine {status.kit.version}" if status.kit and status.kit.version else "the kit"
    during = f" during {status.step[0].lower()}{status.step[1:]}" if status.step else ""
    old = engine_of(install)
    trial = install.slots.get(install.trial_slot) if install.trial_slot else None
    if trial is not None:  # switched by this apply, or by an earlier one it was to repeat
        held = (
            f"slot {install.trial_slot} holds Engine {trial.version} and is armed for a trial "
            f"boot, Engine {old.version} in slot {old.slot} stays the fallback"
        )
    else:
        held = f"nothing was switched: Engine {old.version} still boots from slot {old.slot}"
    return (
        f"the apply of {kit} was interrupted{during} (power cut or stopped); {held}: "
        "run engine-update apply again"
    )


def explain(status: UpdateStatus, install: DetectedInstall | None, running: str = "") -> str:
    """One or two sentences for people: what the state means on this disk now."""
    engine = engine_of(install)
    here = f"Engine {engine.version} (build {engine.build}) in slot {engine.slot}"
    kit = status.kit
    kit_label = f"Engine {kit.version} (build {kit.build})" if kit and kit.version else "the kit"
    if running:
        return f"engine-update is at work ({running}){_step(status)}."
    if status.status == BLANK:
        return f"No update in progress; {here} boots."
    if status.status == PENDING:
        where = kit.file if kit else "?"
        return f"{kit_label} is staged ({where}); engine-update apply installs it."
    if status.status == SIGNALLED:
        return f"{kit_label} is being checked or installed{_step(status)}."
    if status.status == INSTALLED:
        trial = install.trial_slot if install else ""
        if install and trial and install.tries < 3:
            return (
                f"{kit_label} in slot {trial} is on its trial boot ({install.tries} left); "
                f"{here} stays the fallback."
            )
        return (
            f"Restart to start {kit_label} from slot {status.target_slot} (a trial boot); "
            f"{here} stays the fallback."
        )
    return f"{status.reason}." if not status.reason.endswith(".") else status.reason


def _step(status: UpdateStatus) -> str:
    return f": {status.step}" if status.step else ""
