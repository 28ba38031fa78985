"""engine-installer --answers FILE [--dry-run] [--source PATH]: the unattended run.

The same plan → prepare → run_plan path the text UI uses; only the progress printer differs.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from engine_installer.answers import plan_from_answers
from engine_installer.base.errors import UserError, detach_stdout
from engine_installer.base.logs import start_log
from engine_installer.base.progress import ProgressEvent
from engine_installer.disks.mounts import mounted
from engine_installer.install.actions import format_actions
from engine_installer.ondisk.payload import Manifest, find_payload_dir, load_manifest

BOOT_MEDIUM_PAYLOAD = Path("/run/live/medium/engine")


@contextlib.contextmanager
def open_source(source: Path | None) -> Iterator[Manifest]:
    """The manifest of a payload directory, an Engine ISO (loop-mounted read-only) or the
    boot medium (source None)."""
    if source is None:
        if not BOOT_MEDIUM_PAYLOAD.is_dir():
            raise UserError(
                "no Engine payload: not running from an Engine boot medium; "
                'set path = "..." in [source] or pass --source PATH'
            )
        source = BOOT_MEDIUM_PAYLOAD
    if source.is_file():
        if _kernel_has("iso9660"):
            with mounted(source, "iso9660", readonly=True, options="loop") as root:
                yield load_manifest(find_payload_dir(root))
            return
        # No iso9660 in this kernel: extract engine/ with xorriso (user space) instead.
        with tempfile.TemporaryDirectory(prefix="engine-iso-") as tmp:
            proc = subprocess.run(
                [
                    "xorriso",
                    "-osirrox",
                    "on",
                    "-indev",
                    str(source),
                    "-extract",
                    "/engine",
                    f"{tmp}/engine",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                raise UserError(
                    f"cannot read {source} as an Engine ISO (xorriso: "
                    f"{(proc.stderr.strip().splitlines() or ['failed'])[-1]}): check the file"
                )
            yield load_manifest(find_payload_dir(Path(tmp)))
        return
    if not source.exists():
        raise UserError(f"source {source} does not exist: point it at a payload or an Engine ISO")
    yield load_manifest(find_payload_dir(source))


def _kernel_has(fstype: str) -> bool:
    try:
        if f"\t{fstype}\n" in Path("/proc/filesystems").read_text():
            return True
    except OSError:
        return False
    return subprocess.run(["modprobe", "-q", fstype], check=False).returncode == 0


class TextProgress:
    """One line per phase and every 10 % of a byte-counting phase (serial-console friendly)."""

    def __init__(self, stream=sys.stdout) -> None:
        self.stream = stream
        self.last: tuple[str, int] = ("", -1)
        self.closed = False

    def __call__(self, event: ProgressEvent) -> None:
        if event.message:
            self._print(f"[{event.phase}] {event.message}")
            return
        if event.total > 1:
            tenth = int(event.fraction * 10)
            if (event.phase, tenth) != self.last:
                self.last = (event.phase, tenth)
                mib = event.done // (1024 * 1024)
                self._print(f"[{event.phase}] {tenth * 10:3d}% ({mib} MiB)")

    def _print(self, line: str) -> None:
        # A closed stdout (`| head -3`) never stops an install: the printing stops, the log
        # keeps everything.
        if self.closed:
            return
        try:
            print(line, file=self.stream, flush=True)
        except BrokenPipeError:
            self.closed = True
            if self.stream is sys.stdout:
                detach_stdout()


def run_unattended(args) -> int:
    from engine_installer.install.prepare import prepare
    from engine_installer.install.runner import execute

    plan = plan_from_answers(Path(args.answers))
    log_path = start_log("unattended")
    source = plan.source or (Path(args.source) if getattr(args, "source", None) else None)
    with open_source(source) as manifest:
        progress = TextProgress()
        prepared = prepare(plan, manifest, progress)
        if args.dry_run:
            print(
                f"dry run: {prepared.kind} {manifest.label()} on {prepared.disk.describe()}; "
                "nothing will be written. The actions would be:"
            )
            print(format_actions(prepared.actions))
            return 0
        try:
            result = execute(prepared, progress)
        except UserError as err:
            # Something failed after writing began: point at the full log.
            raise type(err)(f"{err} (log: {log_path})") from None
    verb = {"install": "installed", "reinstall": "reinstalled", "upgrade": "upgraded"}
    line = f"Engine {result.version} build {result.build} {verb[result.action]} on {result.disk}"
    line += f", slot {result.slot}"
    if result.previous_version:
        line += f" (was {result.previous_version}; the old slot stays as the fallback)"
    print(line)
    if result.vms_needing_pv_upgrade:
        print("VMs needing a manual PV-driver upgrade:")
        for vm in result.vms_needing_pv_upgrade:
            print(f"  {vm.name} ({vm.kind}, published for {vm.published_for})")
    elif result.action == "upgrade":
        print("No VM needs a manual PV-driver upgrade.")
    if prepared.blocked_vms:
        print(f"VMs published for a newer Engine that will not run on {result.version}:")
        for vm in prepared.blocked_vms:
            print(f"  {vm.name} ({vm.kind}, published for {vm.published_for})")
    print(f"log: {log_path}")
    return 0
