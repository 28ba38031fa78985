"""engine-installer detect [--json] [--disk D]: list Engine installs without touching disks."""

from __future__ import annotations

import json
from pathlib import Path

from engine_installer.install.live import live_snapshot
from engine_installer.machine.snapshot import DetectedInstall
from engine_installer.ondisk.payload import Manifest
from engine_installer.unattended import BOOT_MEDIUM, source_medium

STATE_HINTS = {
    "repairable": 'repair it with action = "repair" (keeps the VMs)',
    "damaged": 'only action = "reinstall" fixes it (erases the VMs)',
    "incomplete": 'the install never finished: run it again (action = "reinstall")',
    "newer-than-media": "installing this medium would be a downgrade",
}


def _media(args) -> tuple[Manifest | None, Path | None]:
    source = getattr(args, "source", None)
    if source:
        medium = source_medium(Path(source))
        return medium.manifest, medium.location
    if (BOOT_MEDIUM / "engine").is_dir():
        medium = source_medium(None)
        return medium.manifest, medium.location
    return None, None


def describe(inst: DetectedInstall) -> str:
    what = f"Engine {inst.version} build {inst.build}" if inst.version else "no Engine"
    line = f"{inst.disk}: {inst.state}: {what}"
    if inst.active_slot:
        line += f", slot {inst.trial_slot or inst.active_slot}"
        if inst.installed_at:
            line += f", installed {inst.installed_at}"
    if inst.vms:
        line += f", {len(inst.vms)} VM(s)"
    if inst.reason:
        line += f" ({inst.reason})"
    if inst.state in STATE_HINTS:
        line += f"; {STATE_HINTS[inst.state]}"
    return line


def run_detect(args) -> int:
    media, location = _media(args)
    machine = live_snapshot(media, source=location, only=args.disk or None)
    installs = machine.installs
    if args.json:
        entries = [dict(i.to_json(), hint=STATE_HINTS.get(i.state, "")) for i in installs]
        print(json.dumps(entries, indent=2))
        return 0
    if not installs:
        print("no Engine install and no other system found on any disk")
        return 0
    if media is not None:
        print(f"media: {media.label()}")
    for inst in installs:
        print(describe(inst))
    return 0
