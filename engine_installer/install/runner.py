"""The install step runner: the only caller of the disk-writing modules.

run_plan(plan, manifest) prepares (verifies the payload, checks the target, decides the action,
validates the action list) and then executes the actions in order. An upgrade's commit point is
the atomic boot-environment write: until then the old slot boots unchanged; after it the new slot
is tried for 3 boots and GRUB falls back to the old one if it never marks itself good.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from engine_installer.base.errors import UserError
from engine_installer.base.logs import copy_log_to, current_log, start_log
from engine_installer.base.progress import ProgressCallback, ProgressEvent, ignore_progress
from engine_installer.disks import esp, filesystems
from engine_installer.disks.blockcopy import Copied
from engine_installer.disks.files import atomic_write
from engine_installer.disks.lock import disk_write_lock
from engine_installer.disks.mounts import mounted
from engine_installer.disks.partition import ensure_partition_nodes, write_gpt
from engine_installer.disks.slot_image import verify_slot, write_slot
from engine_installer.install.actions import ESP_NUMBER, STORAGE_NUMBER, DiskAction
from engine_installer.install.plan import Plan
from engine_installer.install.prepare import Prepared, prepare
from engine_installer.install.results import InstallResult
from engine_installer.ondisk import marker
from engine_installer.ondisk.esp import read_file as read_esp_file
from engine_installer.ondisk.layout import (
    GRUBENV_PATH,
    LOG_DIR_ON_STORAGE,
    MARKER_PATH,
    SLOT_PARTITION_NUMBERS,
    partition_path,
)
from engine_installer.ondisk.payload import Manifest
from engine_installer.ondisk.vms import needs_pv_upgrade

log = logging.getLogger("engine_installer")
CONFIG_PATH = "engine/config.json"  # on the storage partition


class _Executor:
    def __init__(self, prepared: Prepared, progress: ProgressCallback) -> None:
        self.p = prepared
        self.progress = progress
        self.when = marker.now()
        self.copied: dict[str, Copied] = {}  # write-slot's result per partition, for verify

    def run(self, action: DiskAction) -> None:
        getattr(self, "do_" + action.kind.replace("-", "_"))(action)

    def do_partition(self, action: DiskAction) -> None:
        write_gpt(self.p.disk.path, action.params["specs"])

    def do_format(self, action: DiskAction) -> None:
        if action.params["fstype"] == "vfat":
            filesystems.make_esp(action.target)
        else:
            filesystems.make_storage(action.target)

    def do_marker(self, action: DiskAction) -> None:
        mode = action.params["mode"]
        if mode == "new":
            data = marker.new_marker(
                self.p.manifest, action.params["slot"], action.params["disk_serial"], self.when
            )
        else:
            raw = read_esp_file(action.target, MARKER_PATH)
            if raw is None:
                raise UserError(f"the install marker on {action.target} vanished: check the disk")
            data = marker.parse_marker(raw.decode())
            if mode == "complete":
                data["complete"] = True
            elif mode == "slot-table":
                slots = data.setdefault("slots", {})
                slots[action.params["slot"]] = marker.slot_entry(self.p.manifest, self.when)
            elif mode == "switch":
                data.update(
                    version=self.p.manifest.version,
                    build=self.p.manifest.build,
                    slot=action.params["slot"],
                    installed_at=self.when,
                )
        esp.write_file(action.target, MARKER_PATH, marker.marker_bytes(data))

    def do_write_slot(self, action: DiskAction) -> None:
        self.copied[action.target] = write_slot(
            self.p.manifest.root_image,
            action.target,
            self.progress,
            self.p.disk.logical_sector_size,
        )

    def do_verify_slot(self, action: DiskAction) -> None:
        verify_slot(
            self.p.manifest.root_image,
            action.target,
            self.progress,
            self.p.disk.logical_sector_size,
            copied=self.copied.get(action.target),  # its hash states: the check may switch
        )

    def do_bootloader(self, action: DiskAction) -> None:
        from engine_installer.disks.bootloader import install_bootloader

        esp_partition = partition_path(self.p.disk.path, ESP_NUMBER)
        with esp.staged(esp_partition) as root:
            install_bootloader(
                self.p.disk.path, root, action.params["kernel_args"], self.p.manifest
            )
        if self.p.manifest.boot_chain:
            self._boot_entry(esp_partition)

    def do_bootchain(self, action: DiskAction) -> None:
        from engine_installer.disks.efi_chain import update_chain

        update_chain(action.target, self.p.manifest)
        self._boot_entry(action.target)

    def _boot_entry(self, esp_partition: str) -> None:
        from engine_installer.disks import nvram

        log.info(nvram.register(self.p.disk.path, ESP_NUMBER, esp_partition))

    def do_bootenv(self, action: DiskAction) -> None:
        from engine_installer.ondisk.bootenv import BootEnv, write_bootenv

        env = BootEnv(
            active=action.params["active"],
            trial=action.params["trial"],
            tries=action.params["tries"],
        )
        # write_bootenv keeps other variables: start from the current block, if any.
        with tempfile.TemporaryDirectory(prefix="grubenv-") as tmp:
            local = Path(tmp) / "grubenv"
            current = read_esp_file(action.target, GRUBENV_PATH)
            if current:
                local.write_bytes(current)
            write_bootenv(local, env)
            esp.write_file(action.target, GRUBENV_PATH, local.read_bytes())

    def do_config(self, action: DiskAction) -> None:
        if action.preserve:
            return  # upgrade: storage is kept as it is
        config = {
            "keyboard": action.params["keyboard"],
            "kernel_args": action.params["kernel_args"],
            "installed_version": self.p.manifest.version,
            "installed_build": self.p.manifest.build,
        }
        with mounted(action.target, "ext4") as storage:
            atomic_write(storage / CONFIG_PATH, (json.dumps(config, indent=2) + "\n").encode())


def _after_failure(prepared: Prepared, index: int) -> str:
    """What the disk holds after step index failed: one clause for the error sentence."""
    kinds = [a.kind for a in prepared.actions[: index - 1]]
    if prepared.kind == "upgrade":
        old = prepared.previous_version or "the old Engine"
        if "bootenv" not in kinds:
            return (
                f"nothing was switched: Engine {old} still boots from slot {prepared.active_slot}"
            )
        return (
            f"slot {prepared.new_slot} was already switched to (trial boot); Engine {old} in "
            f"slot {prepared.active_slot} stays the fallback"
        )
    if not kinds:
        return "nothing was written"
    return f"the disk holds no complete Engine now: run the {prepared.kind} again"


def execute(prepared: Prepared, progress: ProgressCallback = ignore_progress) -> InstallResult:
    """Run prepared actions in order; stops at the first failure (a UserError)."""
    p = prepared
    executor = _Executor(p, progress)
    numbers = [ESP_NUMBER, STORAGE_NUMBER, *SLOT_PARTITION_NUMBERS.values()]
    if p.kind == "upgrade":
        ensure_partition_nodes(p.disk.path, numbers)
    total = len(p.actions)
    with disk_write_lock(p.disk.path):
        for index, action in enumerate(p.actions, 1):
            log.info("step %d/%d %s: %s", index, total, action.kind, action.description)
            progress(ProgressEvent(action.kind, 0, 1, action.description))
            started = time.monotonic()
            try:
                executor.run(action)
            except UserError as err:
                log.exception("step %d/%d %s failed", index, total, action.kind)
                raise type(err)(f"{err}; {_after_failure(p, index)}") from err
            except Exception:
                log.exception("step %d/%d %s failed", index, total, action.kind)
                raise
            log.info("step %d/%d done in %.1f s", index, total, time.monotonic() - started)
            progress(ProgressEvent(action.kind, 1, 1))
    vms = needs_pv_upgrade(p.inspection.install.vms) if p.kind == "upgrade" else []
    result = InstallResult(
        action=p.kind,
        disk=p.disk.path,
        version=p.manifest.version,
        build=p.manifest.build,
        slot=p.new_slot,
        previous_version=p.previous_version,
        vms_needing_pv_upgrade=vms,
    )
    log.info(
        "%s finished: Engine %s build %s in slot %s on %s at %s",
        p.kind,
        result.version,
        result.build,
        result.slot,
        result.disk,
        datetime.now(UTC).isoformat(),
    )
    progress(ProgressEvent("log", 0, 1, "copying the log to the installed disk"))
    storage = partition_path(p.disk.path, STORAGE_NUMBER)
    with mounted(storage, "ext4") as root:
        copied = copy_log_to(root / LOG_DIR_ON_STORAGE)
    progress(ProgressEvent("done", 1, 1, f"Engine {result.version} is in slot {result.slot}"))
    local = current_log()
    result.log_path = str(local) if local else str(copied or "")
    return result


def run_plan(
    plan: Plan, manifest: Manifest, progress: ProgressCallback = ignore_progress
) -> InstallResult:
    """Install, upgrade or reinstall per the plan; UserError (nothing written) when refused."""
    if current_log() is None:
        start_log()
    log.info("plan: %s; media %s", plan.describe(), manifest.label())
    try:
        prepared = prepare(plan, manifest, progress)
    except Exception as err:
        log.error("refused before writing anything: %s", err)
        raise
    return execute(prepared, progress)
