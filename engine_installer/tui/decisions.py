"""Pure decisions shared by the screens, the live backend and the simulated backend.

Nothing here touches the machine: given detected disks/installs and the media version, decide
which installs count, which actions a choice maps to, whether a plan is a refused downgrade and
which disks may be targets. Live and dry-run runs therefore refuse exactly the same things.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine_installer.base.errors import RefusedError, UserError
from engine_installer.base.versions import compare_versions
from engine_installer.install.plan import Action, Plan
from engine_installer.machine.snapshot import (
    STATE_DAMAGED,
    STATE_FOREIGN,
    STATE_INCOMPLETE,
    STATE_NEWER,
    DetectedInstall,
    DiskInfo,
    VMInfo,
)
from engine_installer.ondisk.layout import minimum_disk_size

PV_UPGRADE_KINDS = ("local", "custom")  # shared images are updated by Engine itself


def needs_pv_upgrade(vms: list[VMInfo]) -> list[VMInfo]:
    """VMs whose PV drivers the technician must upgrade by hand after an upgrade."""
    try:  # the disk backend's vms module is the authority once it is installed
        from engine_installer.ondisk.vms import needs_pv_upgrade as backend_rule
    except ImportError:
        return [vm for vm in vms if vm.kind in PV_UPGRADE_KINDS]
    return backend_rule(vms)


def blocked_by_downgrade(vms: list[VMInfo], media_version: str) -> list[VMInfo]:
    """VMs published for an Engine newer than the media: they stop running after a downgrade."""
    try:
        from engine_installer.ondisk.vms import blocked_by_downgrade as backend_rule
    except ImportError:
        return [
            vm
            for vm in vms
            if vm.published_for and compare_versions(vm.published_for, media_version) > 0
        ]
    return backend_rule(vms, media_version)


def engine_installs(installs: list[DetectedInstall]) -> list[DetectedInstall]:
    """Installs that are Engine's (any state but foreign): the ones the technician chooses from."""
    return [inst for inst in installs if inst.state != STATE_FOREIGN]


def is_downgrade(install: DetectedInstall, media_version: str) -> bool:
    if install.state == STATE_NEWER:
        return True
    return bool(install.version) and compare_versions(install.version, media_version) > 0


def actions_for(install: DetectedInstall) -> list[Action]:
    """What the technician may do with a found install (the order is the order of the buttons)."""
    if install.state in (STATE_INCOMPLETE, STATE_DAMAGED):
        return [Action.REINSTALL]  # nothing trustworthy to keep
    return [Action.UPGRADE, Action.REINSTALL]


def apply_choice(
    plan: Plan,
    install: DetectedInstall,
    action: Action,
    confirmed_downgrade: bool,
    media_version: str,
) -> None:
    """Fill the plan from a choice on the existing-install screen; refuse what is not allowed."""
    if action not in actions_for(install):
        raise RefusedError(
            f"{action.value} is not possible for the install on {install.disk} "
            f"({install.state}): choose Remove and reinstall"
        )
    downgrade = is_downgrade(install, media_version)
    if downgrade and not confirmed_downgrade:
        raise RefusedError(
            f"downgrade refused: {install.disk} holds Engine {install.version}, newer than "
            f"{media_version}; tick the confirmation to downgrade anyway"
        )
    plan.action = action
    plan.target = install.disk
    plan.allow_downgrade = downgrade


@dataclass
class TargetOption:
    disk: DiskInfo
    refusal: str = ""  # why the disk is not offered; "" when it is
    note: str = ""  # what is on it now (it will be erased)

    @property
    def offered(self) -> bool:
        return not self.refusal


def target_options(
    disks: list[DiskInfo], installs: list[DetectedInstall], slot_size: int
) -> list[TargetOption]:
    """Every disk with the reason it is not offered as a new-install target, or what it holds."""
    need = minimum_disk_size(slot_size)
    by_disk = {inst.disk: inst for inst in installs}
    options = []
    for disk in disks:
        refusal = ""
        if disk.is_boot_medium:
            refusal = "the installer is running from it (boot medium)"
        elif disk.in_use:
            refusal = f"in use: {disk.in_use}"
        elif disk.read_only:
            refusal = "read-only"
        elif disk.size < need:
            refusal = f"too small ({disk.size / 1e9:.1f} GB; Engine needs {need / 1e9:.1f} GB)"
        note = ""
        inst = by_disk.get(disk.path)
        if inst and inst.state == STATE_FOREIGN:
            note = f"holds {inst.reason or 'another operating system'}; it will be erased"
        elif inst:
            note = f"holds Engine {inst.version}; it will be erased"
        elif disk.partitions:
            note = f"has {len(disk.partitions)} partition(s); they will be erased"
        options.append(TargetOption(disk, refusal, note))
    return options


def check_plan(
    plan: Plan,
    disks: list[DiskInfo],
    installs: list[DetectedInstall],
    media_version: str,
    slot_size: int,
) -> None:
    """The last word before any disk is touched, live or simulated: same refusals in both."""
    plan.check_complete()
    options = {opt.disk.path: opt for opt in target_options(disks, installs, slot_size)}
    option = options.get(plan.target or "")
    if option is None:
        raise UserError(f"{plan.target} is not a disk on this machine: choose a listed disk")
    if option.refusal:
        raise RefusedError(f"{plan.target} cannot take Engine: {option.refusal}")
    install = next((i for i in engine_installs(installs) if i.disk == plan.target), None)
    if install and is_downgrade(install, media_version) and not plan.allow_downgrade:
        raise RefusedError(
            f"downgrade refused: {plan.target} holds Engine {install.version}, newer than "
            f"{media_version}; confirm the downgrade explicitly"
        )
    if plan.action == Action.UPGRADE and install is None:
        raise RefusedError(f"{plan.target} holds no Engine to upgrade: choose a new install")
    if not plan.confirmed:
        raise UserError("the plan was not confirmed on the summary screen: confirm it first")


def resolved_action(plan: Plan, installs: list[DetectedInstall]) -> Action:
    """AUTO becomes UPGRADE when the target holds an upgradeable Engine, else INSTALL."""
    if plan.action != Action.AUTO:
        return plan.action
    install = next((i for i in engine_installs(installs) if i.disk == plan.target), None)
    if install and Action.UPGRADE in actions_for(install):
        return Action.UPGRADE
    return Action.INSTALL
