"""engine-installer --answers FILE [--dry-run] [--source PATH]: the unattended run.

The same path as the text UI: the answer file fills the plan, the medium is opened and checked
against its SHA256SUMS, the machine is probed once, prepare() decides, and the runner (or, for a
dry run, the simulator) walks the action list, printing the same "Step i of N" lines.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TextIO

from engine_installer.answers import plan_from_answers
from engine_installer.base.errors import UserError, detach_stdout
from engine_installer.base.i18n import _
from engine_installer.base.logs import start_log
from engine_installer.base.progress import ProgressEvent
from engine_installer.install.live import live_snapshot, resolve_target
from engine_installer.install.prepare import KIND_WORDS, Prepared, prepare
from engine_installer.install.results import InstallResult
from engine_installer.install.runner import execute
from engine_installer.install.simulate import simulate
from engine_installer.ondisk.medium import Medium, open_medium

log = logging.getLogger("engine_installer")
BOOT_MEDIUM = Path("/run/live/medium")


def source_medium(source: Path | None) -> Medium:
    """The Engine being installed: --source / [source] path, else the boot medium."""
    if source is None:
        if not (BOOT_MEDIUM / "engine").is_dir():
            raise UserError(
                _(
                    "no Engine payload: not running from an Engine boot medium; "
                    'set path = "..." in [source] or pass --source PATH'
                )
            )
        source = BOOT_MEDIUM
    return open_medium(source)


class TextProgress:
    """Each step's line, and every 10 % of a long step (serial-console friendly).

    Output is best effort: a closed pipe (`... | head -3`) stops the printing, never the
    install."""

    def __init__(self, stream: TextIO = sys.stdout) -> None:
        self.stream: TextIO | None = stream
        self.last: tuple[str, int] = ("", -1)

    def say(self, line: str) -> None:
        if self.stream is None:
            return
        try:
            print(line, file=self.stream, flush=True)
        except (BrokenPipeError, ValueError, OSError):
            # The reader went away: keep going without output (and without a later print
            # failing on the same closed pipe).
            if self.stream is sys.stdout:
                detach_stdout()
            self.stream = None

    def __call__(self, event: ProgressEvent) -> None:
        if event.step and event.message:
            self.say(event.step_line)
            self.last = (event.phase, 0)
            return
        if event.total > 64 * 1024 * 1024 and not event.step:
            tenth = int(event.fraction * 10)
            if (event.phase, tenth) != self.last and tenth:
                self.last = (event.phase, tenth)
                mib = event.done // (1024 * 1024)
                self.say(f"    {tenth * 10:3d}% ({mib} MiB)")


def run_unattended(args) -> int:
    plan = plan_from_answers(Path(args.answers))
    log_path = start_log("unattended")
    source = plan.source or (Path(args.source) if getattr(args, "source", None) else None)
    medium = source_medium(source)
    resolve_target(plan)

    def snapshot_and_prepare() -> Prepared:
        machine = live_snapshot(medium.manifest, source=medium.location)
        return prepare(plan, machine, medium.manifest)

    prepared = snapshot_and_prepare()
    out = TextProgress()
    if not prepared.ok:
        for refusal in prepared.refusals:
            log.error("refused before writing anything: %s", refusal.hint())
        raise prepared.refusals[0].error()
    assert prepared.disk is not None
    kind = KIND_WORDS[prepared.kind]
    out.say(
        f"{kind}: {medium.manifest.label()} on {prepared.disk.describe()}"
        + (f" (now Engine {prepared.previous_version})" if prepared.previous_version else "")
    )
    if args.dry_run:
        out.say("dry run: nothing is written; the steps would be:")
        result = simulate(prepared, out, seconds=0)
    else:
        try:
            result = execute(prepared, out, recheck=snapshot_and_prepare)
        except UserError as err:
            raise type(err)(f"{err} (log: {log_path})") from None
    for line in result_lines(result, dry_run=args.dry_run):
        out.say(line)
    out.say(f"log: {log_path}")
    return 0


def result_lines(result: InstallResult, dry_run: bool = False) -> list[str]:
    """The closing lines of an unattended run: what was done, then the upgrade report."""
    done = {
        "install": "installed",
        "reinstall": "reinstalled",
        "upgrade": "upgraded",
        "downgrade": "downgraded",
        "repair": "repaired",
    }[result.action]
    if result.action == "repair":
        line = f"Engine {result.version} on {result.disk} {done}; slot {result.slot} boots"
    else:
        line = f"Engine {result.version} build {result.build} {done} on {result.disk}"
        line += f", slot {result.slot}"
        if result.previous_version and result.action in ("upgrade", "downgrade"):
            line += f" (was {result.previous_version}; the old slot stays as the fallback)"
    lines = [("dry run: would be " if dry_run else "") + line]
    if result.report is not None:
        lines += result.report.lines()
    if result.report_path:
        lines.append(f"report: {result.report_path}")
    return lines
