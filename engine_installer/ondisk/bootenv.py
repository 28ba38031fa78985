"""The boot environment: which Engine slot GRUB boots, kept as a GRUB environment block.

The block lives on the ESP (layout.GRUBENV_PATH) so that GRUB's load_env/save_env (boot
counting at boot time), `grub-editenv` (people, tests) and this module all read and write the
same file. Keys:

    engine_active   A | B   the known-good slot, booted by default
    engine_trial    A | B | ""   the slot on trial after an upgrade (empty: none)
    engine_tries    3 | 2 | 1 | 0   boots the trial slot has left; GRUB has no arithmetic, so
                    grub.cfg steps the string down (see disks/grub_config.py)

Upgrade commit: BootEnv(active=old, trial=new, tries=3), rewritten in place on the ESP (one
sector: disks/esp.py). The new Engine, on its first good boot, rewrites it to
BootEnv(active=new) itself.

The format is GRUB's own (grub-core/lib/envblk.c): a 1024-byte block that starts with
"# GRUB Environment Block\\n", holds "key=value\\n" lines (backslash escapes "\\\\" and a newline
in values) and is padded with '#'. It is hand-written here because no Python library reads it
and calling grub-editenv would not give the write-temp-then-rename atomicity we need.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine_installer.base.errors import UserError
from engine_installer.ondisk.layout import SLOTS

GRUBENV_HEADER = b"# GRUB Environment Block\n"
GRUBENV_SIZE = 1024
MAX_TRIES = 3

KEY_ACTIVE = "engine_active"
KEY_TRIAL = "engine_trial"
KEY_TRIES = "engine_tries"


@dataclass
class BootEnv:
    active: str
    trial: str = ""
    tries: int = 0


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\\n")


def format_grubenv(values: dict[str, str]) -> bytes:
    """A 1024-byte GRUB environment block holding values (in the given order)."""
    body = bytearray(GRUBENV_HEADER)
    for key, value in values.items():
        if not key or "=" in key or "\n" in key:
            raise ValueError(f"invalid grubenv key {key!r}")
        body += f"{key}={_escape(value)}\n".encode()
    if len(body) > GRUBENV_SIZE:
        raise ValueError(f"grubenv values need {len(body)} bytes, the block holds {GRUBENV_SIZE}")
    return bytes(body) + b"#" * (GRUBENV_SIZE - len(body))


def parse_grubenv(data: bytes) -> dict[str, str]:
    """Variables of a GRUB environment block; ValueError when it is not one."""
    if not data.startswith(GRUBENV_HEADER):
        raise ValueError("not a GRUB environment block (header missing)")
    text = data[len(GRUBENV_HEADER) :].decode("utf-8", errors="replace")
    values: dict[str, str] = {}
    i = 0
    while i < len(text):
        if text[i] == "#":  # padding or a comment line, as GRUB treats it
            end = text.find("\n", i)
            if end < 0:
                break
            i = end + 1
            continue
        # One "key=value" entry; a backslash escapes the next character (also a newline).
        entry = []
        while i < len(text) and text[i] != "\n":
            if text[i] == "\\" and i + 1 < len(text):
                i += 1
            entry.append(text[i])
            i += 1
        i += 1
        key, sep, value = "".join(entry).partition("=")
        if sep and key:
            values[key] = value
    return values


def read_bootenv(path: Path) -> BootEnv:
    """The boot environment at path (on a mounted ESP); UserError when missing or garbled."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise UserError(
            f"no boot environment at {path}: the Engine disk is incomplete, reinstall it"
        ) from None
    return parse_bootenv(data, str(path))


def parse_bootenv(data: bytes, source: str = "the boot environment") -> BootEnv:
    """A BootEnv from grubenv bytes (e.g. read from the ESP with mtools); UserError if bad."""
    try:
        values = parse_grubenv(data)
    except ValueError as err:
        raise UserError(
            f"{source} is damaged ({err}): reinstall or rewrite the boot environment"
        ) from None
    active = values.get(KEY_ACTIVE, "")
    if active not in SLOTS:
        raise UserError(
            f"{source} names no valid active slot ({KEY_ACTIVE}={active!r}): "
            "reinstall or rewrite the boot environment"
        )
    trial = values.get(KEY_TRIAL, "")
    if trial not in SLOTS:
        trial = ""  # GRUB treats anything else as "no trial" as well
    tries_text = values.get(KEY_TRIES, "0")
    tries = int(tries_text) if tries_text in ("0", "1", "2", "3") else 0
    return BootEnv(active=active, trial=trial, tries=tries)


def bootenv_bytes(env: BootEnv) -> bytes:
    """The 1024-byte grubenv block for env (to write to GRUBENV_PATH with mtools)."""
    return format_grubenv(bootenv_values(env))


def bootenv_values(env: BootEnv) -> dict[str, str]:
    if env.active not in SLOTS:
        raise ValueError(f"active slot must be one of {SLOTS}, not {env.active!r}")
    if env.trial not in ("", *SLOTS):
        raise ValueError(f"trial slot must be empty or one of {SLOTS}, not {env.trial!r}")
    if not 0 <= env.tries <= MAX_TRIES:
        raise ValueError(f"tries must be 0..{MAX_TRIES}, not {env.tries}")
    return {KEY_ACTIVE: env.active, KEY_TRIAL: env.trial, KEY_TRIES: str(env.tries)}


def updated_block(current: bytes | None, env: BootEnv) -> bytes:
    """The block to write for env over the current one: other variables (e.g. GRUB's
    saved_entry) are kept, ours come first so they sit in the block's first sector and a
    switch changes that one sector only."""
    values: dict[str, str] = {}
    if current:
        try:
            values = parse_grubenv(current)
        except ValueError:
            values = {}
    ours = bootenv_values(env)
    return format_grubenv(ours | values | ours)
