"""Answer files (TOML, read with tomllib) → the plan. Unknown keys are rejected by name."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from engine_installer.base.errors import UserError
from engine_installer.install.plan import Action, Plan
from engine_installer.machine.keyboards import check_layout

SECTIONS: dict[str, set[str]] = {
    "install": {"action", "target", "eula", "keyboard", "allow_downgrade", "kernel_args"},
    "source": {"path"},
}


def _check_keys(data: dict[str, Any], where: Path) -> None:
    for section, value in data.items():
        if section not in SECTIONS:
            raise UserError(
                f"{where}: unknown section [{section}]; the sections are "
                + ", ".join(f"[{s}]" for s in SECTIONS)
            )
        if not isinstance(value, dict):
            raise UserError(f"{where}: '{section}' must be a [{section}] table")
        for key in value:
            if key not in SECTIONS[section]:
                raise UserError(
                    f"{where}: unknown key '{key}' in [{section}]; allowed: "
                    + ", ".join(sorted(SECTIONS[section]))
                )


def plan_from_answers(path: Path) -> Plan:
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise UserError(f"answer file {path} not found: check the path") from None
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"answer file {path} is not valid TOML: {err}") from None
    _check_keys(data, path)
    install = data.get("install", {})
    plan = Plan()
    action = install.get("action", "auto")
    try:
        plan.action = Action(action)
    except ValueError:
        raise UserError(
            f"{path}: action '{action}' is unknown; use auto, install, upgrade or reinstall"
        ) from None
    plan.target = install.get("target")
    eula = install.get("eula", "")
    if eula != "accepted":
        raise UserError(f'{path}: the licence agreement must be accepted: eula = "accepted"')
    plan.eula_accepted = True
    plan.keyboard = check_layout(str(install.get("keyboard", "us")))
    plan.allow_downgrade = bool(install.get("allow_downgrade", False))
    plan.kernel_args = [str(a) for a in install.get("kernel_args", [])]
    source = data.get("source", {}).get("path")
    if source:
        # Relative paths are relative to the answer file, as a technician would expect.
        plan.source = (path.parent / source).resolve()
    plan.confirmed = True  # an answer file is the technician's confirmation
    plan.check_complete()
    return plan
