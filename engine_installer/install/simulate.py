"""The dry run: walk the prepared action list with simulated timing, writing nothing.

The same steps, titles and "Step i of N" events as runner.execute(), paced by each step's
weight, so the screens, the log and the unattended output of a dry run are those of the real
run. ENGINE_INSTALLER_SIM_SECONDS sets the whole run's length (default 4 s; 0 for none) and
ENGINE_INSTALLER_SIM_FAIL names an action kind (e.g. write-slot) to fail halfway, so the error
screen can be exercised.
"""

from __future__ import annotations

import logging
import os
import time

from engine_installer.base.errors import UserError
from engine_installer.base.i18n import _
from engine_installer.base.progress import ProgressCallback, ProgressEvent, ignore_progress
from engine_installer.install.actions import step_line
from engine_installer.install.prepare import Prepared
from engine_installer.install.results import InstallResult

log = logging.getLogger("engine_installer")
DEFAULT_SECONDS = 4.0
TICK = 0.1


def simulate(
    prepared: Prepared,
    progress: ProgressCallback = ignore_progress,
    seconds: float | None = None,
    fail_kind: str | None = None,
) -> InstallResult:
    """What execute() would report, without touching a disk."""
    p = prepared
    if not p.ok:
        raise p.refusals[0].error()
    assert p.disk is not None
    if seconds is None:
        seconds = float(os.environ.get("ENGINE_INSTALLER_SIM_SECONDS", DEFAULT_SECONDS))
    if fail_kind is None:
        fail_kind = os.environ.get("ENGINE_INSTALLER_SIM_FAIL", "")
    total = len(p.actions)
    weights = sum(a.weight for a in p.actions) or 1
    lines = []
    for index, action in enumerate(p.actions, 1):
        line = step_line(index, total, action)
        lines.append(line)
        log.info("dry run: %s (%s)", line, action.detail)
        progress(ProgressEvent(action.kind, 0, action.weight, action.title, index, total))
        duration = seconds * action.weight / weights
        ticks = max(1, int(duration / TICK))
        for tick in range(1, ticks + 1):
            if duration:
                time.sleep(duration / ticks)
            if action.kind == fail_kind and tick * 2 > ticks:
                raise UserError(
                    _(
                        "{title} failed: I/O error writing {target} (simulated fault); the "
                        "disk's previous contents were not switched over"
                    ).format(title=action.title, target=action.target)
                )
            progress(ProgressEvent(action.kind, action.weight * tick // ticks, action.weight))
        progress(ProgressEvent(action.kind, action.weight, action.weight, "", index, total))
    return p.result(lines)
