"""Answer files (TOML, read with tomllib) → the plan, every key checked by type.

Unknown sections and keys are refused by name; a value of the wrong TOML type (a string where a
boolean belongs, a list for a path) is refused with the key, the value and what is allowed, in
one line, before anything is probed or written.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from engine_installer.base.errors import UserError
from engine_installer.install.plan import Action, Plan
from engine_installer.machine.keyboards import check_layout
from engine_installer.ondisk.cmdline import check_kernel_args

MAX_BYTES = 64 * 1024  # an answer file is a few lines
ACTIONS = ", ".join(a.value for a in Action)
SECTIONS: dict[str, dict[str, str]] = {
    # key → what it must be, in the words of the error message
    "install": {
        "action": f"one of {ACTIONS}",
        "target": "a disk path such as /dev/sda or /dev/disk/by-id/...",
        "eula": '"accepted"',
        "keyboard": 'a keyboard layout name such as "us" (see engine-installer keyboards)',
        "allow_downgrade": "true or false",
        "lab_override": "true or false",
        "kernel_args": 'a list of kernel arguments such as ["quiet"]',
    },
    "source": {"path": "the path of an Engine ISO or payload directory"},
}


def _read(path: Path) -> dict[str, Any]:
    if "\0" in str(path):
        raise UserError("the answer file's path contains a NUL byte: name the file plainly")
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise UserError(f"answer file {path} not found: check the path") from None
    except IsADirectoryError:
        raise UserError(f"answer file {path} is a directory: name the TOML file") from None
    except OSError as err:
        raise UserError(f"answer file {path} cannot be read ({err.strerror})") from None
    if len(raw) > MAX_BYTES:
        raise UserError(
            f"answer file {path} is over {MAX_BYTES // 1024} KiB; an answer file is a few "
            "lines of TOML: check that you named the right file"
        )
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UserError(f"answer file {path} is UTF-16: save it as UTF-8 (TOML's encoding)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserError(
            f"answer file {path} is not UTF-8 text (byte {err.start}): save it as UTF-8"
        ) from None
    if "\0" in text:
        raise UserError(f"answer file {path} contains a NUL byte: it is not a text file")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"answer file {path} is not valid TOML: {err}") from None


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


def _shown(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    text = text.replace("\n", "\\n")
    return text if len(text) <= 60 else text[:59] + "…"


def _bad(where: Path, section: str, key: str, value: Any) -> UserError:
    return UserError(
        f"{where}: {key} = {_shown(value)} in [{section}] is not allowed: "
        f"{key} must be {SECTIONS[section][key]}"
    )


def _string(where: Path, table: dict[str, Any], section: str, key: str) -> str | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or "\0" in value or "\n" in value:
        raise _bad(where, section, key, value)
    return value


def _boolean(where: Path, table: dict[str, Any], key: str) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise _bad(where, "install", key, value)
    return value


def plan_from_answers(path: Path) -> Plan:
    """The plan an answer file asks for; UserError (one line) for anything wrong in it."""
    path = Path(path)
    data = _read(path)
    _check_keys(data, path)
    install = data.get("install", {})
    plan = Plan()
    action = _string(path, install, "install", "action") or "auto"
    try:
        plan.action = Action(action)
    except ValueError:
        raise _bad(path, "install", "action", action) from None
    target = _string(path, install, "install", "target")
    if target is not None and not target.startswith("/"):
        raise _bad(path, "install", "target", target)
    plan.target = target
    eula = install.get("eula")
    if eula != "accepted":
        if eula is None:
            raise UserError(
                f'{path}: the licence agreement must be accepted: set eula = "accepted" in '
                "[install]"
            )
        raise _bad(path, "install", "eula", eula)
    plan.eula_accepted = True
    keyboard = _string(path, install, "install", "keyboard") or "us"
    plan.keyboard = check_layout(keyboard)
    plan.allow_downgrade = _boolean(path, install, "allow_downgrade")
    plan.lab_override = _boolean(path, install, "lab_override")
    if "kernel_args" in install:
        plan.kernel_args = check_kernel_args(install["kernel_args"], f"{path}: kernel_args")
    source = _string(path, data.get("source", {}), "source", "path")
    if source:
        # Relative paths are relative to the answer file, as a technician would expect.
        plan.source = (path.parent / source).resolve()
    if plan.target is None:
        raise UserError(f'{path}: no target disk chosen: set target = "/dev/..." in [install]')
    plan.confirmed = True  # an answer file is the technician's confirmation
    return plan
