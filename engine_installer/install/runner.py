"""The install step runner: the only caller of the disk writers.

execute(prepared) runs the prepared action list in order, under the disk's write lock, after
checking that the disk still is what prepare() saw (a fresh probe prepared again must give the
same steps). Every step reports "Step i of N: <title>" (the words the summary and the dry run
show) and is logged. An upgrade's commit point is the one-sector boot-environment write: until
then the old slot boots unchanged; after it the new slot is tried for 3 boots and GRUB falls back
to the old one if it never marks itself good.

SIGTERM and SIGHUP end a run like Ctrl-C: the step in progress unwinds (mounts are released),
and the error says what the disk holds now.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from engine_installer.base.errors import RefusedError, UserError
from engine_installer.base.i18n import _
from engine_installer.base.logs import copy_log_to, current_log, start_log
from engine_installer.base.progress import ProgressCallback, ProgressEvent, ignore_progress
from engine_installer.disks import esp, filesystems, nvram
from engine_installer.disks.blockcopy import Copied
from engine_installer.disks.bootloader import install_bios_boot, install_bootloader
from engine_installer.disks.efi_chain import update_chain
from engine_installer.disks.files import atomic_write
from engine_installer.disks.grub_config import slot_env_bytes
from engine_installer.disks.lock import UdevHold, disk_write_lock, udev_hold
from engine_installer.disks.mounts import mounted_rw, release_own
from engine_installer.disks.partition import ensure_partition_nodes, wait_for_partitions, write_gpt
from engine_installer.disks.slot_image import verify_slot, write_slot
from engine_installer.install.actions import DiskAction, step_line
from engine_installer.install.plan import Plan
from engine_installer.install.prepare import Prepared
from engine_installer.install.refusals import Refusal
from engine_installer.install.results import InstallResult
from engine_installer.ondisk import marker
from engine_installer.ondisk.bootenv import BootEnv, updated_block
from engine_installer.ondisk.esp import read_file
from engine_installer.ondisk.layout import (
    CONFIG_PATH,
    ESP_NUMBER,
    GRUBENV_PATH,
    LOG_DIR_ON_STORAGE,
    SLOT_ENV_PATHS,
    SLOT_PARTITION_NUMBERS,
    STORAGE_NUMBER,
    TRUST_DIR,
    partition_path,
)
from engine_installer.ondisk.payload import Manifest

log = logging.getLogger("engine_installer")

Recheck = Callable[[], Prepared]


class Interrupted(Exception):
    """SIGTERM, SIGHUP or SIGINT arrived while the disk was being written."""


def _release_all(signals: _Signals) -> None:
    with signals.protected():
        for what in release_own():
            log.info("released %s", what)


class _Executor:
    def __init__(self, prepared: Prepared, progress: ProgressCallback) -> None:
        self.p = prepared
        self.progress = progress
        self.when = marker.now()
        self.report_path = ""
        self.copied: dict[str, Copied] = {}  # write-slot's result per partition, for verify
        self.udev: UdevHold | None = None  # held for the whole run by execute()

    def run(self, action: DiskAction) -> None:
        getattr(self, "do_" + action.kind.replace("-", "_"))(action)

    def do_partition(self, action: DiskAction) -> None:
        specs = action.params["specs"]
        with self.udev.released() if self.udev else contextlib.nullcontext():
            write_gpt(action.target, specs)
        # udev may have re-read the new table before the lock came back: the nodes it removed
        # are added again by then, but wait for them as after the commit.
        wait_for_partitions(action.target, [s.number for s in specs])

    def do_format(self, action: DiskAction) -> None:
        if action.params["fstype"] == "vfat":
            filesystems.make_esp(action.target)
        else:
            filesystems.make_storage(action.target)

    def do_marker(self, action: DiskAction) -> None:
        mode = action.params["mode"]
        copies = marker.read_markers(lambda path: read_file(action.target, path))
        manifest = self.p.manifest
        if mode == "new":
            data = marker.new_marker(
                manifest, action.params["slot"], action.params["disk_serial"], self.when
            )
        elif mode == "rebuild":
            data = dict(action.params["marker"])
        else:
            if copies.marker is None:
                raise UserError(f"the install marker on {action.target} vanished: check the disk")
            data = dict(copies.marker)
            if mode == "complete":
                data["complete"] = True
            elif mode == "slot-table":
                slots = dict(data.get("slots") or {})
                slots[action.params["slot"]] = marker.slot_entry(manifest, self.when)
                data["slots"] = slots
            elif mode == "switch":
                data.update(
                    version=manifest.version,
                    build=manifest.build,
                    slot=action.params["slot"],
                    installed_at=self.when,
                )
        esp.write_file(action.target, copies.next_path, marker.marker_bytes(data, copies.seq + 1))

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
        esp_partition = partition_path(action.target, ESP_NUMBER)
        with esp.staged(esp_partition) as root:
            install_bootloader(action.target, root, self.p.manifest)
        if self.p.manifest.boot_chain:
            self._boot_entry(esp_partition)

    def do_bootchain(self, action: DiskAction) -> None:
        update_chain(action.target, self.p.manifest, lambda: self._boot_entry(action.target))

    def _boot_entry(self, esp_partition: str) -> None:
        """The firmware boot entry for EFI/debian's shim (only on the live system, UEFI)."""
        assert self.p.disk is not None
        log.info(nvram.register(self.p.disk.path, ESP_NUMBER, esp_partition))

    def do_bios_boot(self, action: DiskAction) -> None:
        install_bios_boot(action.target)

    def do_repair_table(self, action: DiskAction) -> None:
        # sgdisk loads the good copy (it says "regenerating ... from backup/main header") and
        # writes both copies and a fresh protective MBR, keeping the MBR's boot code.
        proc = subprocess.run(
            ["sgdisk", "--move-second-header", action.target],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise UserError(
                f"repairing the partition table of {action.target} failed "
                f"({detail[-1] if detail else proc.returncode}): the disk was not changed "
                "further; check it with sgdisk -v"
            )
        subprocess.run(["partx", "-u", action.target], capture_output=True, check=False)
        ensure_partition_nodes(action.target, list(range(1, STORAGE_NUMBER + 1)))

    def do_slot_options(self, action: DiskAction) -> None:
        data = slot_env_bytes(action.params["kernel_args"], action.params["keyboard"])
        esp.write_file(action.target, SLOT_ENV_PATHS[action.params["slot"]], data)

    def do_bootenv(self, action: DiskAction) -> None:
        env = BootEnv(
            active=action.params["active"],
            trial=action.params["trial"],
            tries=action.params["tries"],
        )
        current = read_file(action.target, GRUBENV_PATH)
        block = updated_block(current, env)
        if current is None or len(current) != len(block):
            esp.write_file(action.target, GRUBENV_PATH, block)
        else:
            esp.rewrite_in_place(action.target, GRUBENV_PATH, block)

    def do_config(self, action: DiskAction) -> None:
        with mounted_rw(action.target, "ext4") as storage:
            path = storage / CONFIG_PATH
            config: dict = {}
            with contextlib.suppress(OSError, ValueError):
                loaded = json.loads(path.read_text())
                config = loaded if isinstance(loaded, dict) else {}
            previous = config.get("installed_version", "")
            config.update(
                keyboard=action.params["keyboard"],
                kernel_args=action.params["kernel_args"],
                installed_version=self.p.manifest.version,
                installed_build=self.p.manifest.build,
                installed_slot=self.p.new_slot,
                updated_at=self.when,
            )
            if previous and previous != self.p.manifest.version:
                config["previous_version"] = previous
            atomic_write(path, (json.dumps(config, indent=2) + "\n").encode())

    def do_trust(self, action: DiskAction) -> None:
        certs = self.p.manifest.trust_certs
        with mounted_rw(action.target, "ext4") as storage:
            for name in action.params["names"]:
                atomic_write(storage / TRUST_DIR / name, certs[name])

    def do_save_report(self, action: DiskAction) -> None:
        report = self.p.report
        with mounted_rw(action.target, "ext4") as storage:
            if report is not None:
                report.created_at = self.when
                target = storage / report.file_name()
                atomic_write(target, (json.dumps(report.to_json(), indent=2) + "\n").encode())
                self.report_path = f"{action.target}:/{report.file_name()}"
                for line in report.lines():
                    log.info("report: %s", line)
            copy_log_to(storage / LOG_DIR_ON_STORAGE)


def _fingerprint(prepared: Prepared) -> list[str]:
    return [f"{a.kind} {a.target} {a.title}" for a in prepared.actions]


def _check_unchanged(prepared: Prepared, recheck: Recheck | None) -> None:
    """The disk must still be what the plan was prepared for (another console, a pulled
    disk, a changed table): prepared again from a fresh probe, the steps must be the same."""
    if recheck is None:
        return
    fresh = recheck()
    disk = prepared.disk.path if prepared.disk else ""
    if not fresh.ok:
        first = fresh.refusals[0]
        raise RefusedError(first.hint())
    if _fingerprint(fresh) != _fingerprint(prepared):
        reason = _("the installer would now do something else; nothing was written")
        raise Refusal("disk-changed", disk, {"reason": reason}).error()


def _after_failure(prepared: Prepared, index: int) -> str:
    """What the disk holds after step index failed or was cut off: one clause."""
    done = prepared.actions[: index - 1]
    kinds = [a.kind for a in done]
    if prepared.kind in ("upgrade", "downgrade"):
        switched = any(a.kind == "bootenv" and a.params.get("trial") for a in done)
        old = prepared.previous_version or "?"
        if not switched:
            return _("nothing was switched: Engine {old} still boots from slot {slot}").format(
                old=old, slot=prepared.active_slot
            )
        return _(
            "slot {new} was already switched to (trial boot); Engine {old} in slot {slot} "
            "stays the fallback"
        ).format(new=prepared.new_slot, old=old, slot=prepared.active_slot)
    if prepared.kind == "repair":
        return _("the disk's VMs and data were not touched")
    if not kinds:
        return _("nothing was written")
    if prepared.kind == "reinstall":
        return _("the disk holds no complete Engine now: run the reinstall again")
    return _("the disk holds no complete Engine now: run the install again")


class _Signals:
    """SIGTERM, SIGHUP and SIGINT end a run: the handler raises Interrupted in the main thread,
    so the step in progress unwinds through its `with` blocks. Inside protected() (the final
    cleanup) a signal is only noted, so nothing can cut the cleanup short."""

    NAMES = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)

    def __init__(self) -> None:
        self.received = ""
        self._protected = False
        self._previous: dict[int, object] = {}

    def _handler(self, signum: int, _frame: object) -> None:
        self.received = signal.Signals(signum).name
        if not self._protected:
            raise Interrupted(self.received)

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handler) for sig in self.NAMES}
        return self

    def __exit__(self, *_exc: object) -> None:
        for sig, old in self._previous.items():
            signal.signal(sig, old)  # type: ignore[arg-type]

    @contextlib.contextmanager
    def protected(self) -> Iterator[None]:
        self._protected = True
        try:
            yield
        finally:
            self._protected = False


def execute(
    prepared: Prepared,
    progress: ProgressCallback = ignore_progress,
    recheck: Recheck | None = None,
) -> InstallResult:
    """Run the prepared actions in order; UserError (one sentence: what failed, what the disk
    holds now) at the first failure."""
    p = prepared
    if not p.ok:
        raise p.refusals[0].error()
    assert p.disk is not None
    total = len(p.actions)
    executor = _Executor(p, progress)
    lines = []
    with _Signals() as signals, contextlib.ExitStack() as stack:
        # Registered first, so it runs last, after the lock is released: every mount and temp
        # file of this process goes, whatever stopped the run.
        stack.callback(lambda: _release_all(signals))
        stack.enter_context(disk_write_lock(p.disk.path))
        _check_unchanged(p, recheck)  # probes again: udev must be free to settle
        if p.kind not in ("install", "reinstall") and p.actions[0].kind != "repair-table":
            # An existing table (the kernel may not know it yet, e.g. a fresh loop device).
            ensure_partition_nodes(
                p.disk.path, [ESP_NUMBER, STORAGE_NUMBER, *SLOT_PARTITION_NUMBERS.values()]
            )
        log.info("%s of %s on %s: %d steps", p.kind, p.manifest.label(), p.disk.describe(), total)
        executor.udev = stack.enter_context(udev_hold(p.disk.path))
        for index, action in enumerate(p.actions, 1):
            line = step_line(index, total, action)
            lines.append(line)
            log.info("%s [%s] (%s)", line, action.kind, action.detail)
            progress(ProgressEvent(action.kind, 0, action.weight, action.title, index, total))
            started = time.monotonic()
            try:
                executor.run(action)
            except (KeyboardInterrupt, Interrupted) as err:
                log.error("%s interrupted (%s)", line, err or "Ctrl-C")
                raise UserError(
                    _("interrupted during step {index} of {total} ({title}); {after}").format(
                        index=index, total=total, title=action.title, after=_after_failure(p, index)
                    )
                ) from None
            except UserError as err:
                log.error("%s failed: %s", line, err)
                raise type(err)(f"{err}; {_after_failure(p, index)}") from None
            except Exception as err:
                if signals.received:  # a signal cut a tool or a cleanup short
                    log.error("%s interrupted (%s): %s", line, signals.received, err)
                    raise UserError(
                        f"interrupted during step {index} of {total} ({action.title}); "
                        f"{_after_failure(p, index)}"
                    ) from None
                log.exception("%s failed unexpectedly", line)
                raise UserError(
                    _("step {index} of {total} ({title}) failed: {error}; {after}").format(
                        index=index,
                        total=total,
                        title=action.title,
                        error=f"{err.__class__.__name__}: {err}",
                        after=_after_failure(p, index),
                    )
                ) from None
            log.info("step %d of %d done in %.1f s", index, total, time.monotonic() - started)
            progress(ProgressEvent(action.kind, action.weight, action.weight, "", index, total))
    result = p.result(lines)
    result.report_path = executor.report_path
    log.info(
        "%s finished: Engine %s build %s, slot %s on %s at %s",
        p.kind,
        result.version,
        result.build,
        result.slot,
        result.disk,
        datetime.now(UTC).isoformat(),
    )
    local = current_log()
    result.log_path = str(local) if local else ""
    return result


def keep_on_storage(result: InstallResult, relpath: str, data: bytes) -> str:
    """Keep a file (e.g. an install report no fleet server received) on the storage partition
    of the disk just installed; returns where it is there."""
    storage = partition_path(result.disk, STORAGE_NUMBER)
    with disk_write_lock(result.disk), mounted_rw(storage, "ext4") as root:
        atomic_write(root / relpath, data)
    log.info("kept %s on %s", relpath, storage)
    return relpath


def run_plan(
    plan: Plan,
    manifest: Manifest,
    progress: ProgressCallback = ignore_progress,
    source: Path | None = None,
) -> InstallResult:
    """Probe the plan's target disk, prepare and execute: the library call for one disk.

    Refusals are raised as their answer-file sentence before anything is written."""
    from engine_installer.install.live import live_snapshot, resolve_target
    from engine_installer.install.prepare import prepare

    resolve_target(plan)
    if current_log() is None:
        start_log()
    log.info("plan: %s; media %s", plan.describe(), manifest.label())
    only = [plan.target] if plan.target else None

    def fresh() -> Prepared:
        machine = live_snapshot(manifest, source=source or manifest.directory, only=only)
        return prepare(plan, machine, manifest)

    prepared = fresh()
    if not prepared.ok:
        log.error("refused before writing anything: %s", prepared.refusals[0].hint())
        raise prepared.refusals[0].error()
    return execute(prepared, progress, recheck=fresh)
