"""hw-capture: write a profile draft (TOML) and a replayable machine snapshot (JSON)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from engine_installer.hw.check import generic_profile, is_internal
from engine_installer.hw.schema import SAMPLE_KEYS
from engine_installer.machine.snapshot import MachineSnapshot


def _q(value: str) -> str:
    # tomllib has no writer and tomli-w is not a dependency; a JSON string with ASCII escapes
    # is also a valid TOML basic string (same quoting and \uXXXX escapes).
    return json.dumps(value, ensure_ascii=True)


def _glob_literal(value: str) -> str:
    """Escape glob metacharacters so a captured DMI string matches only itself."""
    return re.sub(r"([*?\[])", r"[\1]", value.strip())


def draft_name(snap: MachineSnapshot) -> str:
    dmi = {k: v.strip() for k, v in snap.dmi.items()}
    version = dmi.get("product_version", "")
    if version.lower().startswith("thinkpad"):
        return f"Lenovo {version}"
    vendor = dmi.get("sys_vendor", "").removesuffix(" Inc.")  # "Dell Inc." -> "Dell"
    name = dmi.get("product_name", "")
    if name.upper().startswith(vendor.upper()):  # HP repeats itself: "HP EliteBook 840 G3"
        vendor = ""
    return " ".join(f"{vendor} {name}".split())


def draft_id(snap: MachineSnapshot) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", draft_name(snap).lower()).strip("-")
    return slug or "unknown-machine"


def profile_draft(snap: MachineSnapshot, year: int) -> str:
    """A TOML profile for this machine: match keys from DMI, requirements from the generic
    profile, and what was seen, so a technician only fills in the setup menu names."""
    g = generic_profile()
    dmi = {k: v.strip() for k, v in snap.dmi.items()}
    controllers = sorted({d.controller for d in snap.disks if is_internal(d) and d.controller})
    flags = set(snap.cpu_flags)
    lines = [
        "# Draft written by 'engine-installer hw-capture'. Check every value against the",
        "# machine and its firmware setup, replace the TODO setting names, then drop the",
        "# file into hw-profiles/ (see docs/hw-profiles.md).",
        f"# Seen: CPU {snap.cpu_model or 'unknown'}; vmx={'vmx' in flags} ept={'ept' in flags} "
        f"DMAR={snap.acpi_dmar}; {snap.memory_bytes / 2**30:.1f} GiB; firmware {snap.firmware}",
    ]
    for d in snap.disks:
        lines.append(f"# Disk: {d.describe()} bus={d.bus} controller={d.controller or '?'}")
    for c in snap.storage_controllers:
        lines.append(f"# Controller: {c.address} {c.kind} driver={c.driver or 'none'}")
    lines += [
        "schema = 1",
        f"name = {_q(draft_name(snap) or 'Unknown machine')}",
        f"released = {year}  # TODO: the model's release year",
        'notes = "Captured draft; not yet reviewed."',
        "",
        "[match]",
    ]
    keys = ["sys_vendor", "product_name", "product_version", "product_family"]
    if dmi.get("product_version", "").lower().startswith("thinkpad"):
        # Lenovo: product_name is the machine type (20L5CTO1WW); match the model instead.
        keys.remove("product_name")
    written = 0
    for key in keys:
        if dmi.get(key):
            lines.append(f"{key} = {_q(_glob_literal(dmi[key]))}")
            written += 1
    if not written or not any(k in dmi for k in ("product_name", "product_version")):
        lines.append('product_name = "TODO"  # no DMI product string was readable')
    lines += [
        "",
        "[firmware]",
        f"modes = [{_q(snap.firmware)}]  # TODO: every mode the model supports",
        'setup_key = "TODO"  # e.g. F2 (Dell), F10 (HP), F1 (Lenovo)',
        'uefi_setting = ""',
        "",
        "[cpu]",
        'vt_x = "require"',
        'ept = "require"',
        'vt_d = "require"',
        'vt_x_setting = "TODO: menu path of the VT-x setting"',
        'vt_d_setting = "TODO: menu path of the VT-d setting"',
        "",
        "[storage]",
        f"controllers = {json.dumps(controllers or g.storage_controllers)}",
        'mode_setting = "TODO: menu path of the SATA/NVMe mode setting (AHCI)"',
        f"min_disk_gb = {g.min_disk_gb}",
        "",
        "[memory]",
        f"min_gib = {g.min_ram_gib:g}",
        f"recommended_gib = {g.recommended_ram_gib:g}",
        "",
        "# What this unit reported.",
        "[sample]",
    ]
    facts = {**dmi, "cpu_model": snap.cpu_model.strip()}
    lines += [f"{k} = {_q(facts[k])}" for k in SAMPLE_KEYS if facts.get(k)]
    return "\n".join(lines) + "\n"


def capture(snap: MachineSnapshot, out: Path, year: int) -> tuple[Path, Path]:
    """Write the draft to `out` and the snapshot next to it; returns both paths."""
    snapshot_path = out.with_name(out.stem + ".snapshot.json")
    out.write_text(profile_draft(snap, year))
    snap.save(snapshot_path)
    return out, snapshot_path
