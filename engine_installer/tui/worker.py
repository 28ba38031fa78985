"""Runs a confirmed plan through the install runner in a child process with no controlling terminal.

The installer UI owns the console. Some disk tools ask questions on /dev/tty when they see one
(mtools' mmd prompts "Long file name already exists" even with stdin on /dev/null), which would
hang an install behind the progress screen. A child in its own session (setsid) has no
controlling terminal, so such a tool fails fast instead of waiting for an answer no one sees;
a crash in the child cannot take the UI down either.

Protocol: the parent writes the request as one JSON object on stdin; the child writes JSON
lines on its original stdout: {"event": ...}* then {"result": ...} or {"error", "refused"}.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from engine_installer.base.errors import RefusedError, UserError
from engine_installer.base.i18n import _, init_language
from engine_installer.base.progress import ProgressCallback, ProgressEvent
from engine_installer.install.plan import Action, Plan
from engine_installer.install.prepare import Prepared
from engine_installer.install.results import InstallResult

log = logging.getLogger("engine_installer.tui")


def plan_to_json(plan: Plan) -> dict[str, Any]:
    data = asdict(plan)
    data["action"] = plan.action.value
    data["source"] = str(plan.source) if plan.source else None
    return data


def plan_from_json(data: dict[str, Any]) -> Plan:
    data = dict(data, action=Action(data["action"]))
    data["source"] = Path(data["source"]) if data.get("source") else None
    return Plan(**data)


def run_in_child(
    prepared: Prepared, source: Path, log_path: Path, progress: ProgressCallback
) -> InstallResult:
    """Probe, prepare and execute prepared.plan in a setsid child; the child refuses to write
    unless it arrives at the same steps the technician confirmed."""
    request = {
        "plan": plan_to_json(prepared.plan),
        "source": str(source),
        "log": str(log_path),
        "steps": [a.title for a in prepared.actions],
    }
    with open(log_path, "ab") as log_file:
        child = subprocess.Popen(
            [sys.executable, "-m", "engine_installer.tui.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log_file,  # tracebacks and stray tool output land in the log
            start_new_session=True,
            text=True,
        )
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(json.dumps(request))
    child.stdin.close()
    outcome: dict[str, Any] = {}
    for line in child.stdout:
        message = json.loads(line)
        if "event" in message:
            progress(ProgressEvent(**message["event"]))
        else:
            outcome = message
    code = child.wait()
    if "result" in outcome:
        return InstallResult.from_json(outcome["result"])
    if "error" in outcome:
        raise (RefusedError if outcome.get("refused") else UserError)(outcome["error"])
    raise UserError(
        _("the install worker stopped unexpectedly (exit {code}): see {path}").format(
            code=code, path=log_path
        )
    )


def _run(request: dict[str, Any], send: Any) -> InstallResult:
    from engine_installer.install.live import live_snapshot
    from engine_installer.install.prepare import prepare
    from engine_installer.install.refusals import Refusal
    from engine_installer.install.runner import execute
    from engine_installer.ondisk.medium import open_medium
    from engine_installer.tui.backend import only_disks

    plan = plan_from_json(request["plan"])
    medium = open_medium(Path(request["source"]))

    def fresh() -> Prepared:
        machine = live_snapshot(medium.manifest, source=medium.location, only=only_disks())
        return prepare(plan, machine, medium.manifest)

    prepared = fresh()
    if prepared.ok and [a.title for a in prepared.actions] != request["steps"]:
        reason = _("the installer would now do something else than the summary showed")
        raise Refusal("disk-changed", plan.target or "", {"reason": reason}).error()
    return execute(prepared, lambda event: send({"event": asdict(event)}), recheck=fresh)


def main() -> int:
    # Keep the protocol channel private: anything else written to stdout goes to the log.
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    request = json.loads(sys.stdin.read())

    def send(message: dict[str, Any]) -> None:
        channel.write(json.dumps(message) + "\n")

    init_language()  # the parent's choice, through ENGINE_INSTALLER_LANG
    handler = logging.FileHandler(request["log"])
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    # Marks the handler as the run log for engine_installer.base.logs, so the runner appends to the
    # UI's log and copies that one file onto the installed disk.
    handler._engine_run_log = True  # type: ignore[attr-defined]
    root = logging.getLogger("engine_installer")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        result = _run(request, send)
    except UserError as err:
        log.error("install failed: %s", err)
        send({"error": str(err), "refused": isinstance(err, RefusedError)})
        return err.exit_code
    except Exception as err:
        log.exception("install failed unexpectedly")
        message = _("unexpected failure: {error}").format(error=f"{err.__class__.__name__}: {err}")
        send({"error": message, "refused": False})
        return 1
    if not result.log_path:
        result.log_path = request["log"]
    send({"result": result.to_json()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
