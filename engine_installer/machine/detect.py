"""Find Engine installs on disks, reading only: nothing is mounted and nothing is written.

The GPT comes from pyparted (read-only; no commit), the marker and the boot environment from
the ESP with mtools (which reads FAT at a byte offset of the whole disk, so no partition node or
mount is needed), and the VM inventory from the storage partition with debugfs in catastrophic
(read-only) mode at the partition's offset. Disks are inspected in parallel.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine_installer.base.versions import compare_versions
from engine_installer.machine.snapshot import (
    STATE_DAMAGED,
    STATE_FOREIGN,
    STATE_INCOMPLETE,
    STATE_NEWER,
    STATE_SAME_VERSION,
    STATE_UPGRADEABLE,
    DetectedInstall,
    DiskInfo,
    VMInfo,
)
from engine_installer.ondisk import esp
from engine_installer.ondisk.gpt import read_gpt
from engine_installer.ondisk.layout import (
    ENGINE_LABELS,
    GRUBENV_PATH,
    LABEL_ESP,
    LABEL_STORAGE,
    MARKER_PATH,
    SLOTS,
    VMS_DIR,
)
from engine_installer.ondisk.marker import parse_marker
from engine_installer.ondisk.payload import Manifest
from engine_installer.ondisk.vms import parse_vm_json


@dataclass
class Inspection:
    """What detection found on one disk; the runner reuses it to plan an upgrade."""

    install: DetectedInstall | None  # None: an empty disk
    marker: dict[str, Any] | None = None
    bootenv: Any = None  # bootenv.BootEnv
    partitions: dict[str, tuple[int, int, int]] = field(
        default_factory=dict
    )  # label → n, start, size


def _mcopy(disk: str, offset: int, path: str) -> bytes | None:
    return esp.read_file(disk, path, offset)


def _debugfs(device: str, commands: list[str]) -> tuple[int, str]:
    proc = subprocess.run(
        ["debugfs", "-c", "-f", "-", device],
        input="\n".join(commands) + "\n",
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
    )
    return proc.returncode, proc.stdout


def read_vms(disk: str, offset: int) -> list[VMInfo] | None:
    """VMs on the storage partition at offset; None when it holds no ext4 filesystem."""
    device = f"{disk}?offset={offset}"
    code, out = _debugfs(device, [f"ls -p /{VMS_DIR}"])
    if code != 0 or "debugfs: ls" not in out:
        return None
    names = []
    for line in out.splitlines():
        # ls -p: /inode/mode/uid/gid/name/size/ ; directories have mode 04xxxx.
        parts = line.split("/")
        if len(parts) >= 6 and parts[2].startswith("04") and parts[5] not in (".", ".."):
            names.append(parts[5])
    if not names:
        return []
    _code, out = _debugfs(device, [f"cat /{VMS_DIR}/{n}/vm.json" for n in names])
    # cat prints a file without a trailing newline, so the next command's echo may follow on
    # the same line: split on the echoes themselves, not on lines.
    pieces = re.split(rf"debugfs: cat /{VMS_DIR}/([^/\n]+)/vm\.json\n", out)
    chunks = dict(zip(pieces[1::2], pieces[2::2], strict=True))
    vms = []
    for name in names:
        try:
            vms.append(parse_vm_json(chunks.get(name, ""), name))
        except ValueError:
            continue  # a VM directory without a readable vm.json is not inventoried
    return vms


def _read_bootenv(data: bytes):
    from engine_installer.ondisk.bootenv import read_bootenv

    with tempfile.NamedTemporaryFile(prefix="grubenv-") as handle:
        handle.write(data)
        handle.flush()
        return read_bootenv(Path(handle.name))


def _whole_disk_fstype(path: str) -> str:
    proc = subprocess.run(
        ["blkid", "-p", "-o", "value", "-s", "TYPE", path],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip()


def _fs_summary(disk: DiskInfo) -> str:
    parts = [f"{p.path} {p.fstype or 'unknown'}" for p in disk.partitions]
    return ", ".join(parts) if parts else "an unknown partition table"


def _state_for(version: str, media: Manifest | None) -> str:
    if media is None:
        return STATE_UPGRADEABLE
    order = compare_versions(version, media.version)
    if order > 0:
        return STATE_NEWER
    if order == 0:
        return STATE_SAME_VERSION
    return STATE_UPGRADEABLE


def inspect_disk(disk: DiskInfo, media: Manifest | None) -> Inspection:
    found = DetectedInstall(disk=disk.path, state="", model=disk.model, size=disk.size)
    try:
        gpt = read_gpt(disk.path)
    except Exception:  # noqa: BLE001 - an unreadable disk is reported, never fatal
        gpt = []
    if not gpt and not disk.partitions:
        fstype = _whole_disk_fstype(disk.path)
        if not fstype:
            return Inspection(install=None)  # empty: not listed
        found.state = STATE_FOREIGN
        found.reason = f"the whole disk holds a {fstype} filesystem (no partition table)"
        return Inspection(install=found)
    labels = {name: (number, start, size) for number, name, start, size in gpt}
    inspection = Inspection(install=found, partitions=labels)
    engine = [label for label in ENGINE_LABELS if label in labels]
    if not engine:
        found.state = STATE_FOREIGN
        found.reason = f"the disk holds another system ({_fs_summary(disk)})"
        return inspection
    missing = [label for label in ENGINE_LABELS if label not in labels]
    if missing:
        found.state = STATE_DAMAGED
        found.reason = f"the Engine partition table lacks {', '.join(missing)}"
        return inspection
    esp_offset = labels[LABEL_ESP][1]
    # Partitions were written through their own nodes, whose caches the whole disk's does
    # not share: drop stale whole-disk blocks before reading at offsets (no data is written).
    with contextlib.suppress(OSError):
        esp.flush_device(disk.path)
    raw = _mcopy(disk.path, esp_offset, MARKER_PATH)
    if raw is None:
        found.state = STATE_DAMAGED
        found.reason = "the EFI system partition holds no install marker (engine/install.json)"
        return inspection
    try:
        marker = parse_marker(raw.decode("utf-8", "replace"))
    except ValueError as err:
        found.state = STATE_DAMAGED
        found.reason = f"the install marker is unreadable ({err})"
        return inspection
    inspection.marker = marker
    found.version = str(marker.get("version", ""))
    found.build = str(marker.get("build", ""))
    found.installed_at = str(marker.get("installed_at", ""))
    found.active_slot = str(marker.get("slot", ""))
    if not marker.get("complete"):
        found.state = STATE_INCOMPLETE
        found.reason = f"the install of {found.version} build {found.build} never finished"
        return inspection
    env_raw = _mcopy(disk.path, esp_offset, GRUBENV_PATH)
    try:
        bootenv = _read_bootenv(env_raw) if env_raw is not None else None
    except Exception:  # noqa: BLE001 - any parse failure means the same to the user
        bootenv = None
    if bootenv is None or bootenv.active not in SLOTS:
        found.state = STATE_DAMAGED
        found.reason = "the boot environment (boot/grub/grubenv) is missing or names no slot"
        return inspection
    inspection.bootenv = bootenv
    found.active_slot = bootenv.trial if bootenv.trial and bootenv.tries > 0 else bootenv.active
    vms = read_vms(disk.path, labels[LABEL_STORAGE][1])
    if vms is None:
        found.state = STATE_DAMAGED
        found.reason = "the storage partition holds no readable ext4 filesystem"
        return inspection
    found.vms = vms
    try:
        found.state = _state_for(found.version, media)
    except Exception:  # noqa: BLE001 - a garbled version string in the marker
        found.state = STATE_DAMAGED
        found.reason = f"the install marker names an invalid version '{found.version}'"
    return inspection


def detect_installs(disks: list[DiskInfo], media: Manifest | None) -> list[DetectedInstall]:
    """Every Engine (or foreign) install on the given disks; empty disks are not listed."""
    if not disks:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(disks))) as pool:
        results = list(pool.map(lambda d: inspect_disk(d, media), disks))
    return [r.install for r in results if r.install is not None]
