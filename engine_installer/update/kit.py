"""engine-update's work on a running Engine: stage, apply, status and cancel of an update kit.

The kit is an Engine installer ISO, unchanged, read in place (ondisk/medium.py). apply is one
more face over the one decision path: it fills a Plan with running_engine=True (the target is
the disk this Engine runs from, its active slot and storage mounted), prepare() decides and
builds the action list, and the runner executes it, as for a boot medium. What this module
adds is what only a kit needs: the signature against the trust store, every file's hash before
the first write, free space, and the status file's transitions (update/status.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

from engine_installer.base.errors import RefusedError, UserError
from engine_installer.base.logs import start_log
from engine_installer.base.progress import ProgressEvent
from engine_installer.disks.lock import update_lock, update_lock_holder
from engine_installer.disks.mounts import mounted_rw
from engine_installer.install.live import live_snapshot
from engine_installer.install.plan import Action, Plan
from engine_installer.install.prepare import Prepared, find_install, prepare
from engine_installer.install.results import InstallResult
from engine_installer.install.runner import execute
from engine_installer.machine.probe import booted_engine_disk, probe_disk, resolve_disk_path
from engine_installer.machine.snapshot import DetectedInstall
from engine_installer.ondisk.cmdline import check_kernel_args
from engine_installer.ondisk.layout import (
    CONFIG_PATH,
    LABEL_STORAGE,
    STORAGE_NUMBER,
    TRUST_DIR,
    UPDATES_DIR,
    partition_path,
)
from engine_installer.ondisk.medium import Medium, check_iso, open_medium
from engine_installer.ondisk.signature import load_trust_store, verify_sums_signature
from engine_installer.unattended import TextProgress
from engine_installer.update.status import (
    BLANK,
    FAILED,
    INSTALLED,
    PENDING,
    SIGNALLED,
    Kit,
    UpdateStatus,
    engine_of,
    read_status,
    reconcile,
    write_status,
)

log = logging.getLogger("engine_installer")
MiB = 1024 * 1024
# What an apply writes on storage besides the kit: config, report, log, status, certificates.
APPLY_RESERVE = 16 * MiB
COPY_CHUNK = 4 * MiB
PARTIAL_SUFFIX = ".partial"


# --- the Engine disk and its storage ---------------------------------------------------------


def engine_disk(disk: str | None) -> str:
    """--disk DEV, else the disk this Engine booted from."""
    if disk:
        return os.path.realpath(resolve_disk_path(disk))
    booted = booted_engine_disk()
    if booted is None:
        raise UserError(
            "this system did not boot from an Engine disk: name the Engine disk with --disk DEV"
        )
    return booted


@contextlib.contextmanager
def engine_storage(disk: str) -> Iterator[Path]:
    """The Engine disk's storage partition, mounted read-write (where Engine has it mounted,
    else for the duration of the command)."""
    device = partition_path(disk, STORAGE_NUMBER)
    labels = {part.path: part.label for part in probe_disk(disk).partitions}
    if labels.get(device) != LABEL_STORAGE:
        raise UserError(
            f"{disk} is not an Engine disk (no {LABEL_STORAGE} partition {device}): name the "
            "Engine disk with --disk DEV"
        )
    with mounted_rw(device, "ext4") as root:
        yield root


def free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def check_space(storage: Path, need: int, what: str) -> None:
    free = free_bytes(storage)
    if free < need:
        raise UserError(
            f"not enough space on the storage partition for {what} (needs {need // MiB} MiB, "
            f"{free // MiB} MiB free): free some space (old VMs, engine/updates/) and try again"
        )


def read_config(storage: Path) -> tuple[str, list[str]]:
    """The running Engine's keyboard and kernel arguments (engine/config.json): the update
    keeps them. A damaged file keeps the defaults (logged)."""
    keyboard, args = "us", []
    try:
        data = json.loads((storage / CONFIG_PATH).read_text())
        keyboard = str(data.get("keyboard") or keyboard)
        args = check_kernel_args(data.get("kernel_args", []), "engine/config.json kernel_args")
    except (OSError, ValueError, AttributeError, UserError) as err:
        log.warning(
            "engine/config.json unreadable (%s): keyboard %s, no kernel arguments", err, keyboard
        )
    return keyboard, args


def detect(disk: str) -> DetectedInstall | None:
    """What detection reads on the disk (marker, boot environment, slots), no media."""
    machine = live_snapshot(None, only=[disk])
    return find_install(machine, disk)


# --- the kit ---------------------------------------------------------------------------------


def kit_path(kit: Path) -> Path:
    """The kit named on the command line, as an absolute path; UserError for a typo (the
    status is not touched: nothing was tried)."""
    if not kit.exists():
        raise UserError(f"{kit} not found: check the path to the kit")
    if kit.is_dir():
        raise UserError(f"{kit} is a directory: a kit is an Engine installer ISO file")
    return Path(os.path.abspath(kit))


def open_kit(path: Path) -> Medium:
    """The kit's Engine: an Engine installer ISO file, its SHA256SUMS and manifest checked."""
    medium = open_medium(path)
    if medium.kind != "iso":
        raise UserError(f"{path} is not an Engine installer ISO: name the kit's .iso file")
    return medium


def check_signature(medium: Medium, storage: Path) -> str:
    trusted = load_trust_store(storage / TRUST_DIR)
    return verify_sums_signature(medium.sums, medium.signature, trusted, medium.location.name)


def _staged_kits(storage: Path) -> list[Path]:
    folder = storage / UPDATES_DIR
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _kit_to_apply(kit: Path | None, current: UpdateStatus, storage: Path) -> Path:
    if kit is not None:
        return kit_path(kit)
    if current.status in (PENDING, SIGNALLED, FAILED) and current.kit and current.kit.file:
        recorded = storage / current.kit.file  # a staged kit's path is storage-relative
        if recorded.is_file():
            return recorded
        raise UserError(
            f"the kit {recorded} is gone: stage it again with engine-update stage KIT, or name "
            "it: engine-update apply KIT"
        )
    staged = _staged_kits(storage)
    if len(staged) == 1:
        return staged[0]
    raise UserError(
        "no kit is staged: stage one with engine-update stage KIT, or name it: "
        "engine-update apply KIT"
    )


# --- stage -----------------------------------------------------------------------------------


def _copy_durably(source: Path, target: Path, progress: TextProgress) -> None:
    """source → target: a temporary name, fsync, rename, fsync the directory."""
    partial = target.with_name(f".{target.name}{PARTIAL_SUFFIX}")
    total = source.stat().st_size
    done = 0
    try:
        with open(source, "rb") as src, open(partial, "wb") as dst:
            while block := src.read(COPY_CHUNK):
                dst.write(block)
                done += len(block)
                progress(ProgressEvent("stage", done, total))
            dst.flush()
            os.fsync(dst.fileno())
    except OSError as err:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise UserError(
            f"copying {source} failed ({err.strerror}): check the kit and the disk"
        ) from None
    os.replace(partial, target)
    fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def stage(disk_arg: str | None, kit: Path, out: TextProgress) -> UpdateStatus:
    """Copy a signed kit into engine/updates/ on storage: status Pending (Failed if bad)."""
    disk = engine_disk(disk_arg)
    kit = kit_path(kit)
    start_log("update")
    with update_lock(disk), engine_storage(disk) as storage:
        current = reconcile(read_status(storage)[0], detect(disk))
        if current.status == INSTALLED:
            raise RefusedError(_waits_for_restart(current))
        status = UpdateStatus(kit=Kit(str(kit)), engine=current.engine, times=current.times)
        try:
            check_space(storage, kit.stat().st_size + APPLY_RESERVE, f"the kit {kit.name}")
            medium = open_kit(kit)
            status.kit.version = medium.manifest.version
            status.kit.build = medium.manifest.build
            status.kit.signer = check_signature(medium, storage)
            folder = storage / UPDATES_DIR
            folder.mkdir(parents=True, exist_ok=True)
            name = re.sub(r"[^A-Za-z0-9._+-]", "_", kit.name).lstrip(".") or "kit.iso"
            target = folder / name
            if kit.resolve() != target.resolve():
                out.say(f"Copying {kit.name} to {UPDATES_DIR}/ on the storage partition")
                _copy_durably(kit, target, out)
            for other in folder.iterdir():  # one staged kit: older ones and leftovers go
                if other.name != target.name:
                    with contextlib.suppress(OSError):
                        other.unlink()
            status.kit.file = str(target.relative_to(storage))  # valid wherever it is mounted
        except UserError as err:
            write_status(storage, status.moved(FAILED, str(err), failed=True))
            raise
        pending = status.moved(PENDING, staged=True)
        write_status(storage, pending)
        return pending


def _waits_for_restart(status: UpdateStatus) -> str:
    kit = status.kit.version if status.kit else "the new Engine"
    return (
        f"Engine {kit} is installed in slot {status.target_slot} and waits for a restart: "
        "restart Engine first, then stage the next kit"
    )


# --- apply -----------------------------------------------------------------------------------


def apply(
    disk_arg: str | None, kit_arg: Path | None, out: TextProgress, lab_override: bool = False
) -> tuple[UpdateStatus, InstallResult]:
    """Check and install the kit into the inactive slot: Signalled, then Installed (Reboot
    Required), or Failed with the reason (raised as UserError)."""
    disk = engine_disk(disk_arg)
    log_path = start_log("update")
    with update_lock(disk), engine_storage(disk) as storage:
        current, _note = read_status(storage)
        kit = _kit_to_apply(kit_arg, current, storage)
        same = current.kit is not None and storage / current.kit.file == kit
        status = UpdateStatus(
            kit=current.kit if same else Kit(str(kit)),
            engine=current.engine,
            times=current.times if same else {},
        ).moved(SIGNALLED, started=True)
        write_status(storage, status)
        log.info("engine-update apply %s on %s (log %s)", kit, disk, log_path)
        try:
            result = _apply(disk, kit, storage, status, out, lab_override)
        except UserError as err:
            write_status(storage, status.moved(FAILED, str(err), failed=True))
            raise
        except KeyboardInterrupt:
            reason = "interrupted before anything was written: run engine-update apply again"
            write_status(storage, status.moved(FAILED, reason, failed=True))
            raise UserError(reason) from None
        status.report = result.report.file_name() if result.report else ""
        installed = status.moved(INSTALLED, installed=True)
        write_status(storage, installed)
        if kit.parent == storage / UPDATES_DIR:  # written into the slot: the copy has done its job
            with contextlib.suppress(OSError):
                kit.unlink()
        return installed, result


def _apply(
    disk: str,
    kit: Path,
    storage: Path,
    status: UpdateStatus,
    out: TextProgress,
    lab_override: bool,
) -> InstallResult:
    check_space(storage, APPLY_RESERVE, "the update's configuration, report and log")
    medium = open_kit(kit)
    assert status.kit is not None
    status.kit.version, status.kit.build = medium.manifest.version, medium.manifest.build
    status.kit.signer = check_signature(medium, storage)
    write_status(storage, status)
    out.say(f"Checking {kit.name}: {medium.manifest.label()}, signed by {status.kit.signer}")
    check_iso(kit, out)  # every file against SHA256SUMS, before the first write
    keyboard, kernel_args = read_config(storage)
    plan = Plan(
        action=Action.UPGRADE,
        target=disk,
        keyboard=keyboard,
        kernel_args=kernel_args,
        eula_accepted=True,  # accepted when this Engine was installed; a kit shows no screens
        source=kit,
        lab_override=lab_override,
        running_engine=True,
    )
    log.info("plan: %s; kit %s", plan.describe(), medium.manifest.label())

    def fresh() -> Prepared:
        machine = live_snapshot(medium.manifest, source=kit, only=[disk])
        return prepare(plan, machine, medium.manifest)

    prepared = fresh()
    if not prepared.ok:
        for refusal in prepared.refusals:
            log.error("refused before writing anything: %s", refusal.kit_hint())
        raise prepared.refusals[0].error(kit=True)
    status.engine = engine_of(prepared.install)
    status.target_slot = prepared.new_slot
    write_status(storage, status)
    out.say(
        f"{prepared.kind}: Engine {prepared.previous_version} → {medium.manifest.label()} into "
        f"slot {prepared.new_slot} of {disk}"
    )

    def progress(event: ProgressEvent) -> None:
        out(event)
        if event.step and event.message:
            status.step = event.step_line
            write_status(storage, status)

    return execute(prepared, progress, recheck=fresh)


# --- status and cancel -----------------------------------------------------------------------


def current_status(disk_arg: str | None) -> tuple[UpdateStatus, DetectedInstall | None, str, str]:
    """(status, what the disk holds, who runs an apply now or "", note). The reconciled state
    is written back when no engine-update runs."""
    disk = engine_disk(disk_arg)
    with engine_storage(disk) as storage:
        install = detect(disk)
        holder = update_lock_holder(disk)
        status, note = read_status(storage)
        if holder:
            return status, install, holder, note
        try:
            with update_lock(disk):
                status, note = read_status(storage)
                settled = reconcile(status, install)
                if settled.status == BLANK and not settled.kit and not settled.engine.version:
                    settled.engine = engine_of(install)
                if settled != status or note:
                    write_status(storage, settled)
                return settled, install, "", note
        except RefusedError:  # an apply started meanwhile
            return status, install, update_lock_holder(disk) or "starting", note


def cancel(disk_arg: str | None) -> UpdateStatus:
    """Withdraw an update that is not installed: staged kits go, the status becomes blank."""
    disk = engine_disk(disk_arg)
    with update_lock(disk), engine_storage(disk) as storage:
        install = detect(disk)
        status = reconcile(read_status(storage)[0], install)
        if status.status == INSTALLED:
            raise RefusedError(
                _waits_for_restart(status)
                + "; it cannot be withdrawn now: the restart starts it, and GRUB falls back to "
                f"Engine {status.engine.version} if it does not start"
            )
        if install and install.trial_slot:
            raise RefusedError(
                f"slot {install.trial_slot} is armed for a trial boot (an interrupted apply): "
                "run engine-update apply to finish it first"
            )
        for kit in _staged_kits(storage):
            kit.unlink()
        for leftover in (storage / UPDATES_DIR).glob(f".*{PARTIAL_SUFFIX}"):
            leftover.unlink()
        cancelled = status.moved(BLANK, cancelled=True)
        cancelled.kit = None
        cancelled.target_slot = ""
        cancelled.engine = engine_of(install)
        write_status(storage, cancelled)
        return cancelled
