"""engine-installer detect [--json] [--disk D]: list Engine installs without touching disks."""

from __future__ import annotations

import json
from pathlib import Path

from engine_installer.machine.detect import detect_installs
from engine_installer.machine.probe import probe_disk, probe_disks
from engine_installer.ondisk.payload import Manifest, find_payload_dir, load_manifest
from engine_installer.unattended import BOOT_MEDIUM_PAYLOAD, open_source


def _media(args) -> tuple[Manifest | None, Path | None]:
    source = getattr(args, "source", None)
    if source:
        return None, Path(source)
    if BOOT_MEDIUM_PAYLOAD.is_dir():
        return load_manifest(find_payload_dir(BOOT_MEDIUM_PAYLOAD)), None
    return None, None


def _detect(args, media: Manifest | None) -> list:
    disks = [probe_disk(d) for d in args.disk] if args.disk else probe_disks()
    return detect_installs(disks, media)


def run_detect(args) -> int:
    media, source = _media(args)
    if source is not None:
        with open_source(source) as manifest:
            installs = _detect(args, manifest)
            media = manifest
    else:
        installs = _detect(args, media)
    if args.json:
        print(json.dumps([i.to_json() for i in installs], indent=2))
        return 0
    if not installs:
        print("no Engine install and no other system found on any disk")
        return 0
    if media is not None:
        print(f"media: {media.label()}")
    for inst in installs:
        what = f"Engine {inst.version} build {inst.build}" if inst.version else "no Engine"
        line = f"{inst.disk}: {inst.state}: {what}"
        if inst.active_slot:
            line += f", slot {inst.active_slot}, installed {inst.installed_at}"
        if inst.vms:
            line += f", {len(inst.vms)} VM(s)"
        if inst.reason:
            line += f" ({inst.reason})"
        print(line)
    return 0
