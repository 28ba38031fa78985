"""The install marker engine/install.json on the ESP, written atomically.

Detection reads it (with mtools, without mounting); the runner writes it with complete=false as
soon as the ESP exists and with complete=true as the very last step, so an interrupted install
is recognisable as incomplete.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..layout import MARKER_PATH
from ..payload import Manifest


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


def atomic_write(path: Path, data: bytes) -> None:
    """temp + fsync + rename + fsync(dir): readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def marker_bytes(marker: dict[str, Any]) -> bytes:
    return (json.dumps(marker, indent=2) + "\n").encode()


def write_marker(esp_root: Path, marker: dict[str, Any]) -> None:
    """On a mounted ESP (the runner uses esp.write_file through mtools instead)."""
    atomic_write(esp_root / MARKER_PATH, marker_bytes(marker))


def read_marker(esp_root: Path) -> dict[str, Any] | None:
    try:
        return parse_marker((esp_root / MARKER_PATH).read_text())
    except FileNotFoundError:
        return None


def parse_marker(text: str) -> dict[str, Any]:
    """ValueError when the text is not a marker (detection reports that as damaged)."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("the install marker is not a JSON object")
    for key in ("product", "version", "build", "slot", "complete"):
        if key not in data:
            raise ValueError(f"the install marker lacks '{key}'")
    return data
