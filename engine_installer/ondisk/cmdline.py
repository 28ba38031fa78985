"""Kernel arguments for the installed Engine: what is allowed, checked before anything runs.

The arguments end up in a GRUB environment block (one per slot) that grub.cfg expands on the
`linux` line, so they must survive GRUB's word splitting and variable expansion unchanged:
plain words only, no quotes, no `$`, no `;`, no whitespace. The kernel's command line holds
2048 bytes on x86; the installer's own arguments take about 150, so the extra ones are capped
well below the rest.
"""

from __future__ import annotations

import re

from engine_installer.base.errors import UserError

ALLOWED = re.compile(r"[A-Za-z0-9_.,:=/+@%-]+")
ALLOWED_TEXT = "letters, digits and _ . , : = / + @ % -"
MAX_ARGS = 32
MAX_ARG_LENGTH = 256
MAX_TOTAL_LENGTH = 768  # bytes, joined with spaces; fits a 1 KiB GRUB environment block


def check_kernel_args(value: object, where: str = "kernel_args") -> list[str]:
    """The arguments as a list, or UserError naming the key, the value and what is allowed."""
    if isinstance(value, str):
        raise UserError(
            f'{where} = "{_short(value)}" is a string: give a list of arguments, '
            f'e.g. {where} = ["{_short(value)}"]'
        )
    if not isinstance(value, list | tuple):
        raise UserError(
            f"{where} = {_short(repr(value))} is not a list: give a list of strings, "
            f'e.g. {where} = ["quiet"]'
        )
    if len(value) > MAX_ARGS:
        raise UserError(
            f"{where} has {len(value)} arguments; at most {MAX_ARGS} are allowed: "
            "drop the ones Engine does not need"
        )
    args = []
    for index, arg in enumerate(value):
        if not isinstance(arg, str):
            raise UserError(
                f"{where}[{index}] = {_short(repr(arg))} is not a string: quote it, "
                f'e.g. "{_short(str(arg))}"'
            )
        if not arg:
            raise UserError(f"{where}[{index}] is empty: remove it")
        if len(arg) > MAX_ARG_LENGTH:
            raise UserError(
                f"{where}[{index}] is {len(arg)} characters long; at most {MAX_ARG_LENGTH} "
                "are allowed"
            )
        if not ALLOWED.fullmatch(arg):
            bad = next(c for c in arg if not ALLOWED.fullmatch(c))
            raise UserError(
                f"{where}[{index}] = {_short(repr(arg))} contains {bad!r}: kernel arguments "
                f"may hold only {ALLOWED_TEXT}"
            )
        args.append(arg)
    total = len(" ".join(args).encode())
    if total > MAX_TOTAL_LENGTH:
        raise UserError(
            f"{where} adds up to {total} bytes; at most {MAX_TOTAL_LENGTH} fit on the kernel "
            "command line: drop some arguments"
        )
    return args


def merged_kernel_args(*groups: list[str]) -> list[str]:
    """Arguments from several sources in order, each once (the first occurrence wins)."""
    seen: set[str] = set()
    merged = []
    for group in groups:
        for arg in group:
            if arg not in seen:
                seen.add(arg)
                merged.append(arg)
    return merged


def _short(text: str, limit: int = 40) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 1] + "…"
