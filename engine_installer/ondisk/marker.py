"""The install marker on the ESP: what is installed, kept in two copies.

The marker records product, version, build, install time, the default slot, a table of what
each slot holds, and whether the install finished. It lives twice on the ESP
(layout.MARKER_PATHS). Each copy carries a sequence number and a SHA-256 of its own contents;
a writer always overwrites the older copy, so a power cut in the middle of a write leaves the
newer one whole, and a reader takes the newest copy that checks out.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engine_installer.ondisk.layout import MARKER_PATHS
from engine_installer.ondisk.payload import Manifest

REQUIRED = ("product", "version", "build", "slot", "complete")
SEQ = "seq"
CHECKSUM = "sha256"


def now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def slot_entry(manifest: Manifest, when: str) -> dict[str, str]:
    return {"version": manifest.version, "build": manifest.build, "installed_at": when}


def new_marker(manifest: Manifest, slot: str, disk_serial: str, when: str) -> dict[str, Any]:
    return {
        "product": manifest.product,
        "version": manifest.version,
        "build": manifest.build,
        "installed_at": when,
        "slot": slot,
        "disk_serial": disk_serial,
        "complete": False,
        "slots": {slot: slot_entry(manifest, when)},
    }


def _digest(marker: dict[str, Any]) -> str:
    body = {k: v for k, v in marker.items() if k != CHECKSUM}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def marker_bytes(marker: dict[str, Any], seq: int) -> bytes:
    """One copy's file contents: the marker with its sequence number and checksum."""
    sealed = {k: v for k, v in marker.items() if k not in (SEQ, CHECKSUM)}
    sealed[SEQ] = seq
    sealed[CHECKSUM] = _digest(sealed)
    return (json.dumps(sealed, indent=2) + "\n").encode()


def parse_marker(text: str) -> dict[str, Any]:
    """ValueError when the text is not a whole marker copy (damaged, torn or foreign)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"not JSON ({err.msg})") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    for key in REQUIRED:
        if key not in data:
            raise ValueError(f"lacks '{key}'")
    if CHECKSUM in data and data[CHECKSUM] != _digest(data):
        raise ValueError("its checksum does not match (a torn or damaged write)")
    return data


@dataclass
class MarkerCopies:
    """Both copies as read: the newest whole one, and which path the next write goes to."""

    marker: dict[str, Any] | None  # the newest whole copy; None when no copy is readable
    path: str  # where it was read from ("" when none)
    problems: list[str]  # copies that exist but do not check out

    @property
    def seq(self) -> int:
        return int(self.marker.get(SEQ, 0)) if self.marker else 0

    @property
    def next_path(self) -> str:
        """The copy to overwrite next: never the newest whole one."""
        return next(p for p in MARKER_PATHS if p != self.path)


def read_markers(read: Callable[[str], bytes | None]) -> MarkerCopies:
    """Read every copy with read(path) (None = missing) and pick the newest whole one."""
    best: tuple[int, str, dict[str, Any]] | None = None
    problems = []
    for path in MARKER_PATHS:
        raw = read(path)
        if raw is None:
            continue
        try:
            data = parse_marker(raw.decode("utf-8", "replace"))
            seq = int(data.get(SEQ, 0))
        except (ValueError, TypeError) as err:
            problems.append(f"{path}: {err}")
            continue
        if best is None or seq > best[0]:
            best = (seq, path, data)
    if best is None:
        return MarkerCopies(None, "", problems)
    return MarkerCopies(best[2], best[1], problems)
