"""prepare(plan, machine, media): the one place that decides what the installer will do.

Pure: it probes nothing and writes nothing. Given the plan (filled by the screens or an answer
file), a machine snapshot (probed live, or recorded for a dry run) and the media's manifest, it
decides the action (install, upgrade, reinstall, downgrade, repair), collects every refusal as
data (faces word them: install/refusals.py), builds the ordered action list and the upgrade
report. The text UI, answer files, the dry run, the real run and the update kit all call it, so
what any of them shows is what the disk gets.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

from engine_installer.base.errors import UserError
from engine_installer.hw.check import FAIL, HwReport, check_machine
from engine_installer.install.actions import (
    DiskAction,
    install_actions,
    repair_actions,
    upgrade_actions,
    validate_actions,
)
from engine_installer.install.plan import Action, Plan
from engine_installer.install.refusals import Refusal
from engine_installer.install.report import UpgradeReport, needs_pv_upgrade, will_not_run
from engine_installer.install.results import InstallResult
from engine_installer.machine.snapshot import (
    ENGINE_STATES,
    REPAIR_BIOS_BOOT,
    STATE_DAMAGED,
    STATE_FOREIGN,
    STATE_INCOMPLETE,
    STATE_NEWER,
    STATE_REPAIRABLE,
    DetectedInstall,
    DiskInfo,
    MachineSnapshot,
)
from engine_installer.ondisk.bootchain import chain_is_newer
from engine_installer.ondisk.cmdline import check_kernel_args, merged_kernel_args
from engine_installer.ondisk.layout import (
    LABEL_STORAGE,
    SLOT_LABELS,
    minimum_disk_size,
    slot_other,
)
from engine_installer.ondisk.payload import Manifest

log = logging.getLogger("engine_installer")

# What each action is called on every screen, in the log and in results.
KIND_WORDS = {
    "install": "install",
    "reinstall": "reinstall",
    "upgrade": "upgrade",
    "downgrade": "downgrade",
    "repair": "repair",
}


@dataclass
class Prepared:
    plan: Plan
    manifest: Manifest
    disk: DiskInfo | None
    install: DetectedInstall | None  # what detection found on the target (None: blank)
    kind: str  # install | reinstall | upgrade | downgrade | repair ("" when refused early)
    refusals: list[Refusal] = field(default_factory=list)
    actions: list[DiskAction] = field(default_factory=list)
    report: UpgradeReport | None = None
    hardware: HwReport | None = None
    kernel_args: list[str] = field(default_factory=list)  # the plan's plus the profile's
    active_slot: str = ""  # upgrade: the slot that boots today (kept as the fallback)
    new_slot: str = ""  # the slot the new version goes into

    @property
    def ok(self) -> bool:
        return not self.refusals

    @property
    def previous_version(self) -> str:
        found = self.install
        return found.version if found and found.is_engine else ""

    def result(self, steps: list[str]) -> InstallResult:
        """What a finished run (real or simulated) of these actions hands back."""
        assert self.disk is not None
        repair = self.kind == "repair" and self.install is not None
        return InstallResult(
            action=self.kind,
            disk=self.disk.path,
            version=self.install.version if repair else self.manifest.version,
            build=self.install.build if repair else self.manifest.build,
            slot=self.new_slot or self.active_slot,
            previous_version=self.previous_version,
            report=self.report,
            steps=steps,
        )


def find_disk(machine: MachineSnapshot, target: str) -> DiskInfo | None:
    """The disk a plan names: its path or one of its /dev/disk/by-id links."""
    for disk in machine.disks:
        if target == disk.path or target in disk.by_id:
            return disk
    return None


def find_install(machine: MachineSnapshot, disk: str) -> DetectedInstall | None:
    return next((i for i in machine.installs if i.disk == disk), None)


def target_refusals(
    disk: DiskInfo, manifest: Manifest, running_engine: bool = False
) -> list[Refusal]:
    """Why a disk cannot take Engine at all, whatever the action (the target list uses it).

    running_engine: the disk this Engine runs from; which of its partitions may be in use is
    decided with the slot to write (running_refusals)."""
    refusals = []
    if running_engine:
        pass  # its own mounts, and a kit staged on its storage: see running_refusals()
    elif disk.is_boot_medium:
        refusals.append(Refusal("boot-medium", disk.path))
    elif disk.busy_installer:
        refusals.append(Refusal("being-written", disk.path, {"pid": str(disk.busy_installer)}))
    elif disk.in_use:
        refusals.append(Refusal("in-use", disk.path, {"reason": disk.in_use}))
    if disk.read_only:
        refusals.append(Refusal("read-only", disk.path))
    need = minimum_disk_size(manifest.slot_size)
    if disk.size < need:
        refusals.append(
            Refusal(
                "too-small",
                disk.path,
                {
                    "size": f"{disk.size / 1e9:.2f} GB",
                    "need": f"{need / 1e9:.2f} GB",
                    "version": manifest.version,
                },
            )
        )
    return refusals


def running_refusals(disk: DiskInfo, new_slot: str) -> list[Refusal]:
    """An update of the running Engine (the update kit): the running system may hold its
    active slot and its storage partition (where a staged kit lives too), nothing else; above
    all not the slot the update writes."""
    allowed = {LABEL_STORAGE, SLOT_LABELS[slot_other(new_slot)]}
    refusals = []
    busy = {part.in_use for part in disk.partitions if part.in_use}
    if disk.in_use and disk.in_use not in busy:  # the whole disk itself is mounted or held
        refusals.append(Refusal("in-use", disk.path, {"reason": disk.in_use}))
    for part in disk.partitions:
        if part.mountpoint and part.label == SLOT_LABELS[new_slot]:
            detail = {"slot": new_slot, "partition": part.path, "mountpoint": part.mountpoint}
            refusals.append(Refusal("slot-mounted", disk.path, detail))
        elif part.in_use and not (part.mountpoint and part.label in allowed):
            refusals.append(Refusal("in-use", disk.path, {"reason": part.in_use}))
    return refusals


def decide(plan: Plan, install: DetectedInstall | None, manifest: Manifest) -> tuple[str, list]:
    """The action for the plan and what is on the disk, or the refusals (pure rules)."""
    disk = plan.target or ""
    state = install.state if install else ""
    engine = install is not None and install.is_engine
    if plan.running_engine and plan.action not in (Action.AUTO, Action.UPGRADE):
        return "", [Refusal("running-action", disk, {"action": plan.action.value})]
    if plan.action is Action.REINSTALL:
        return "reinstall", []
    if plan.action is Action.REPAIR:
        if state == STATE_REPAIRABLE:
            return "repair", []
        if not engine:
            return "", [Refusal("no-engine", disk, {"reason": _what(install)})]
        if state in (STATE_DAMAGED, STATE_INCOMPLETE):
            return "", [Refusal("not-repairable", disk, {"reason": install.reason})]
        return "", [Refusal("nothing-to-repair", disk, {"reason": _what(install)})]
    if plan.action is Action.INSTALL:
        if engine:
            return "", [
                Refusal(
                    "holds-engine",
                    disk,
                    {"version": install.version or "?", "vms": str(len(install.vms))},
                )
            ]
        return "install", []
    # AUTO and UPGRADE keep what is on the disk.
    if state == STATE_REPAIRABLE:
        return "", [Refusal("needs-repair", disk, {"reason": install.reason})]
    if state in (STATE_DAMAGED, STATE_INCOMPLETE):
        return "", [Refusal("damaged", disk, {"reason": install.reason})]
    if state in ENGINE_STATES:
        if state == STATE_NEWER:
            # The running Engine is never downgraded by a kit: 5.0 VMs do not run on 4.5.
            if not plan.allow_downgrade or plan.running_engine:
                blocked = will_not_run(install.vms, manifest.version)
                names = (
                    ", ".join(f"{vm.name} ({vm.kind}, for {vm.published_for})" for vm in blocked)
                    or "none of its VMs"
                )
                return "", [
                    Refusal(
                        "downgrade",
                        disk,
                        {"version": install.version, "media": manifest.version, "vms": names},
                    )
                ]
            return "downgrade", []
        return "upgrade", []
    if plan.action is Action.UPGRADE or plan.running_engine:
        return "", [Refusal("no-engine", disk, {"reason": _what(install)})]
    if state == STATE_FOREIGN:
        return "", [Refusal("not-blank", disk, {"reason": install.reason})]
    return "install", []


def _what(install: DetectedInstall | None) -> str:
    if install is None:
        return "the disk is blank"
    return f"{install.state}: {install.reason}" if install.reason else install.state


def prepare(plan: Plan, machine: MachineSnapshot, manifest: Manifest) -> Prepared:
    """Decide everything for plan on machine with manifest's Engine; writes nothing."""
    prepared = Prepared(plan, manifest, None, None, "")
    if not plan.eula_accepted:
        prepared.refusals.append(Refusal("eula"))
    if not plan.target:
        prepared.refusals.append(Refusal("no-target"))
        return prepared
    disk = find_disk(machine, plan.target)
    if disk is None:
        prepared.refusals.append(Refusal("unknown-disk", plan.target))
        return prepared
    prepared.disk = disk
    install = find_install(machine, disk.path)
    prepared.install = install
    prepared.refusals += target_refusals(disk, manifest, plan.running_engine)
    hardware = check_machine(machine, media=manifest)
    prepared.hardware = hardware
    if hardware.verdict == FAIL and not plan.lab_override:
        reason = "; ".join(item.message for item in hardware.blocking)
        prepared.refusals.append(Refusal("hardware", disk.path, {"reason": reason}))
    kind, refusals = decide(_with_disk(plan, disk.path), install, manifest)
    prepared.kind = kind
    prepared.refusals += refusals
    args = merged_kernel_args(hardware.kernel_args, plan.kernel_args)
    try:
        check_kernel_args(args, "kernel_args with the hardware profile's")
    except UserError as err:
        prepared.refusals.append(Refusal("kernel-args", disk.path, {"reason": str(err)}))
    prepared.kernel_args = args
    if not kind:
        return prepared
    prepared.report = _report(kind, disk, install, manifest)
    trust = sorted(manifest.trust_certs)
    if kind in ("install", "reinstall"):
        prepared.new_slot = "A"
        prepared.actions = install_actions(
            disk.path,
            disk.size,
            manifest,
            plan.keyboard,
            args,
            disk_serial=disk.serial,
            reinstall=kind == "reinstall",
            trust=trust,
        )
    elif kind == "repair":
        assert install is not None
        prepared.active_slot = install.active_slot or "A"
        prepared.actions = repair_actions(
            disk.path,
            install.repairs,
            bios_boot=REPAIR_BIOS_BOOT in install.repairs,
            active_slot=prepared.active_slot,
            marker=_rebuilt_marker(install),
        )
    else:
        assert install is not None
        active = install.active_slot or "A"
        new = slot_other(active)
        prepared.active_slot, prepared.new_slot = active, new
        if plan.running_engine:
            prepared.refusals += running_refusals(disk, new)
        span = install.partitions.get(SLOT_LABELS[new])
        if span and manifest.root_image.size > span[2]:
            prepared.refusals.append(
                Refusal("slot-too-small", disk.path, {"media": manifest.version, "slot": new})
            )
            return prepared
        prepared.actions = upgrade_actions(
            disk.path,
            manifest,
            active,
            plan.keyboard,
            args,
            downgrade=kind == "downgrade",
            # An update of the running Engine never touches the boot loader (update kit).
            chain_from=None if plan.running_engine else _chain_to_replace(install, manifest),
            trust=trust,
            disarm_trial=install.trial_slot == new,
        )
    validate_actions(
        prepared.actions,
        kind,
        disk.path,
        disk.size,
        active_slot=prepared.active_slot,
        running_engine=plan.running_engine,
    )
    return prepared


def _chain_to_replace(install: DetectedInstall, manifest: Manifest) -> dict[str, str] | None:
    """The ESP's boot chain versions when the payload's chain should replace it, else None:
    an upgrade never rewrites the ESP's boot loader unless the payload's chain is newer."""
    if not manifest.boot_chain or not chain_is_newer(manifest.boot_chain, install.boot_chain):
        return None
    return dict(install.boot_chain)


def _with_disk(plan: Plan, path: str) -> Plan:
    """The plan with its target resolved to the disk's path (a by-id link names the same)."""
    return replace(plan, target=path)


def _report(
    kind: str, disk: DiskInfo, install: DetectedInstall | None, manifest: Manifest
) -> UpgradeReport:
    keeps = kind in ("upgrade", "downgrade", "repair")
    vms = install.vms if install and keeps else []
    return UpgradeReport(
        action=kind,
        disk=disk.path,
        from_version=install.version if install and install.is_engine else "",
        to_version=manifest.version if kind != "repair" else (install.version if install else ""),
        to_build=manifest.build,
        media_pv_driver=manifest.pv_driver,
        vms_needing_pv_upgrade=needs_pv_upgrade(vms, manifest.pv_driver, manifest.version)
        if kind in ("upgrade", "downgrade")
        else [],
        vms_that_will_not_run=will_not_run(vms, manifest.version) if kind == "downgrade" else [],
    )


def _rebuilt_marker(install: DetectedInstall) -> dict:
    """The marker a repair writes when no copy survived: from what the slots hold."""
    slot = install.active_slot or "A"
    return {
        "product": "Engine",
        "version": install.version,
        "build": install.build,
        "installed_at": install.installed_at,
        "slot": slot,
        "disk_serial": "",
        "complete": True,
        "slots": {s: {"version": i.version, "build": i.build} for s, i in install.slots.items()},
    }
