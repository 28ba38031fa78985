"""The VM inventory on the storage partition: vms/<name>/vm.json → VMInfo."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine_installer.base.errors import UserError
from engine_installer.base.versions import parse_version
from engine_installer.ondisk.layout import VMS_DIR

VM_KINDS = ("shared", "custom", "local")


@dataclass
class VMInfo:
    name: str
    kind: str  # shared | custom | local
    published_for: str  # Engine version the VM was published for
    pv_driver: str = ""


def vm_from_json(data: dict[str, Any], fallback_name: str = "") -> VMInfo:
    """ValueError when the entry is not a VM description (callers report it, not crash)."""
    if not isinstance(data, dict):
        raise ValueError("vm.json is not a JSON object")
    kind = str(data.get("kind", ""))
    if kind not in VM_KINDS:
        raise ValueError(f"vm.json kind '{kind}' is not one of {', '.join(VM_KINDS)}")
    published = str(data.get("published_for", ""))
    try:
        parse_version(published)
    except UserError:
        raise ValueError(f"vm.json published_for '{published}' is not a version") from None
    return VMInfo(
        name=str(data.get("name") or fallback_name),
        kind=kind,
        published_for=published,
        pv_driver=str(data.get("pv_driver", "")),
    )


def parse_vm_json(text: str, fallback_name: str = "") -> VMInfo:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"vm.json is not valid JSON: {err}") from None
    return vm_from_json(data, fallback_name)


def load_vms(storage_root: Path) -> list[VMInfo]:
    """Every readable VM under a mounted storage partition, sorted by name; bad entries skipped."""
    vms = []
    base = storage_root / VMS_DIR
    if not base.is_dir():
        return []
    for entry in sorted(base.iterdir()):
        path = entry / "vm.json"
        if path.is_file():
            try:
                vms.append(parse_vm_json(path.read_text(), entry.name))
            except ValueError:
                continue
    return vms
