"""The install marker engine/install.json on the ESP: its format.

Detection reads it (with mtools, without mounting); the runner writes it with complete=false as
soon as the ESP exists and with complete=true as the very last step, so an interrupted install
is recognisable as incomplete.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from engine_installer.ondisk.payload import Manifest


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


def marker_bytes(marker: dict[str, Any]) -> bytes:
    return (json.dumps(marker, indent=2) + "\n").encode()


def parse_marker(text: str) -> dict[str, Any]:
    """ValueError when the text is not a marker (detection reports that as damaged)."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("the install marker is not a JSON object")
    for key in ("product", "version", "build", "slot", "complete"):
        if key not in data:
            raise ValueError(f"the install marker lacks '{key}'")
    return data
