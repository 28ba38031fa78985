"""Everything checked before the first byte is written: the payload, the target, the action.

Every refusal is one UserError line naming the problem and the fix. prepare() returns the
validated action list, which --dry-run prints and run_plan executes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from engine_installer.base.errors import RefusedError, UserError
from engine_installer.base.progress import ProgressCallback, ProgressEvent, ignore_progress
from engine_installer.install.actions import (
    ESP_NUMBER,
    DiskAction,
    install_actions,
    upgrade_actions,
    validate_actions,
)
from engine_installer.install.plan import Action, Plan
from engine_installer.machine.detect import Inspection, inspect_disk
from engine_installer.machine.probe import probe_disk
from engine_installer.machine.snapshot import (
    STATE_DAMAGED,
    STATE_NEWER,
    STATE_SAME_VERSION,
    STATE_UPGRADEABLE,
    DiskInfo,
    VMInfo,
)
from engine_installer.ondisk import esp
from engine_installer.ondisk.bootchain import RECORD_PATH, chain_is_newer, parse_record
from engine_installer.ondisk.layout import (
    SLOT_LABELS,
    minimum_disk_size,
    partition_path,
    slot_other,
)
from engine_installer.ondisk.payload import Manifest, verify_payload
from engine_installer.ondisk.vms import blocked_by_downgrade, describe_vms

log = logging.getLogger("engine_installer")
ENGINE_STATES = (STATE_UPGRADEABLE, STATE_SAME_VERSION, STATE_NEWER)


@dataclass
class Prepared:
    plan: Plan
    manifest: Manifest
    disk: DiskInfo
    kind: str  # "install" | "upgrade" | "reinstall"
    inspection: Inspection
    actions: list[DiskAction]
    active_slot: str = ""  # upgrade: the slot that boots today (kept as the fallback)
    new_slot: str = "A"  # the slot the new version goes into
    previous_version: str = ""
    blocked_vms: list[VMInfo] = field(default_factory=list)


def check_target(disk: DiskInfo, manifest: Manifest) -> None:
    if disk.read_only:
        raise UserError(f"{disk.path} is read-only: choose a writable disk or remove write-protect")
    if disk.is_boot_medium:
        raise RefusedError(
            f"{disk.path} is the boot medium this installer runs from: choose another disk"
        )
    if disk.in_use:
        raise RefusedError(
            f"{disk.path} is in use ({disk.in_use}): unmount or release it, or choose another disk"
        )
    need = minimum_disk_size(manifest.slot_size)
    if disk.size < need:
        raise UserError(
            f"{disk.path} is too small ({disk.size / 1e9:.2f} GB; Engine {manifest.version} "
            f"needs at least {need / 1e9:.2f} GB): choose a bigger disk"
        )


def _downgrade_check(plan: Plan, inspection: Inspection, manifest: Manifest) -> list[VMInfo]:
    found = inspection.install
    assert found is not None
    blocked = blocked_by_downgrade(found.vms, manifest.version)
    if found.state == STATE_NEWER and not plan.allow_downgrade:
        names = describe_vms(blocked) if blocked else "none of the VMs on it"
        raise RefusedError(
            f"{plan.target} holds Engine {found.version}, newer than this medium's "
            f"{manifest.version}; a downgrade stops VMs published for the newer Engine: {names}; "
            "set allow_downgrade = true in [install] to do it anyway"
        )
    return blocked


def decide(plan: Plan, inspection: Inspection, manifest: Manifest) -> str:
    """auto/install/upgrade/reinstall + what is on the disk → the action to run (or refuse)."""
    found = inspection.install
    state = found.state if found else ""
    where = f"{plan.target}"
    if plan.action is Action.REINSTALL:
        return "reinstall"
    if plan.action is Action.INSTALL:
        if state in ENGINE_STATES:
            assert found is not None
            raise RefusedError(
                f"{where} already holds Engine {found.version} with {len(found.vms)} VM(s): "
                'use action = "upgrade" to keep them or "reinstall" to wipe them'
            )
        return "install"
    if state in ENGINE_STATES:
        return "upgrade"
    if plan.action is Action.UPGRADE:
        what = f"{state}: {found.reason}" if found and found.reason else state or "empty disk"
        raise UserError(
            f"{where} holds no upgradeable Engine install ({what}): "
            'use action = "install" or "reinstall"'
        )
    if state == STATE_DAMAGED:
        assert found is not None
        raise RefusedError(
            f"{where} holds a damaged Engine install ({found.reason}): "
            'use action = "reinstall" to wipe it and install afresh'
        )
    return "install"


def prepare(
    plan: Plan,
    manifest: Manifest,
    progress: ProgressCallback = ignore_progress,
    verify: bool = True,
) -> Prepared:
    """Validate everything and build the action list; writes nothing."""
    plan.check_complete()
    if verify:
        progress(ProgressEvent("verify-payload", 0, 1, f"checking {manifest.label()} payload"))
        verify_payload(manifest)
        progress(ProgressEvent("verify-payload", 1, 1))
    disk = probe_disk(str(plan.target), source=manifest.directory)
    check_target(disk, manifest)
    inspection = inspect_disk(disk, manifest)
    kind = decide(plan, inspection, manifest)
    log.info("target %s: %s; action %s", disk.describe(), _found(inspection), kind)
    if kind in ("install", "reinstall"):
        actions = install_actions(
            disk.path,
            disk.size,
            manifest,
            plan.keyboard,
            plan.kernel_args,
            disk_serial=disk.serial,
            reinstall=kind == "reinstall",
        )
        validate_actions(actions, kind, disk.path, disk.size)
        return Prepared(plan, manifest, disk, kind, inspection, actions)
    found = inspection.install
    assert found is not None and inspection.bootenv is not None
    blocked = _downgrade_check(plan, inspection, manifest)
    active = inspection.bootenv.active
    new = slot_other(active)
    slot_size = inspection.partitions[SLOT_LABELS[new]][2]
    if manifest.root_image.size > slot_size:
        raise UserError(
            f"the {manifest.label()} slot image does not fit slot {new} ({slot_size} bytes) "
            'on this disk: use action = "reinstall" to re-partition (wipes the VMs)'
        )
    actions = upgrade_actions(disk.path, manifest, active, _chain_to_replace(disk, manifest))
    validate_actions(actions, "upgrade", disk.path, disk.size, active_slot=active)
    return Prepared(
        plan,
        manifest,
        disk,
        "upgrade",
        inspection,
        actions,
        active_slot=active,
        new_slot=new,
        previous_version=found.version,
        blocked_vms=blocked,
    )


def _chain_to_replace(disk: DiskInfo, manifest: Manifest) -> dict[str, str] | None:
    """The ESP's boot chain versions when the payload's chain should replace it, else None."""
    if not manifest.boot_chain:
        return None
    esp_device = partition_path(disk.path, ESP_NUMBER)
    installed = parse_record(esp.read_file(esp_device, RECORD_PATH))
    if not chain_is_newer(manifest.boot_chain, installed):
        log.info("boot chain on %s is current (%s): left as it is", esp_device, installed)
        return None
    return installed


def _found(inspection: Inspection) -> str:
    found = inspection.install
    if found is None:
        return "empty disk"
    text = f"{found.state} {found.version}".strip()
    return f"{text} ({found.reason})" if found.reason else text
