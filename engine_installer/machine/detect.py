"""Find Engine installs on disks, reading only: nothing is mounted and nothing is written.

Both GPT copies and the protective MBR come from ondisk.gpt (so a disk with one damaged copy is
still recognised), the marker copies and the boot environment from the ESP with mtools (which
reads FAT at a byte offset of the whole disk, so no partition node or mount is needed), the VM
inventory and each slot's /etc/engine-release from ext4 with debugfs in catastrophic
(read-only) mode at the partition's offset. Other signatures come from wipefs --no-act.
Disks are inspected in parallel; a disk that vanishes mid-scan is skipped and logged.

Nothing is destroyed by inference: any Engine partition name, any install marker or any
readable copy of an Engine GPT makes a disk an Engine disk; any signature at all makes it a
non-blank ("foreign") disk. Only a disk with neither is blank.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor

from engine_installer.base.versions import compare_versions
from engine_installer.machine.snapshot import (
    REPAIR_BIOS_BOOT,
    REPAIR_BOOTENV,
    REPAIR_GPT,
    REPAIR_MARKER,
    STATE_DAMAGED,
    STATE_FOREIGN,
    STATE_INCOMPLETE,
    STATE_NEWER,
    STATE_REPAIRABLE,
    STATE_SAME_VERSION,
    STATE_UPGRADEABLE,
    DetectedInstall,
    DiskInfo,
    SlotInfo,
)
from engine_installer.ondisk import esp
from engine_installer.ondisk.bootchain import RECORD_PATH as CHAIN_RECORD_PATH
from engine_installer.ondisk.bootchain import parse_record
from engine_installer.ondisk.bootenv import parse_bootenv
from engine_installer.ondisk.gpt import inspect_gpt
from engine_installer.ondisk.layout import (
    ALIGNMENT,
    BIOS_BOOT_SIZE,
    ENGINE_LABELS,
    GRUBENV_PATH,
    LABEL_ESP,
    LABEL_STORAGE,
    SLOT_LABELS,
    SLOTS,
    VMS_DIR,
)
from engine_installer.ondisk.marker import read_markers
from engine_installer.ondisk.payload import Manifest
from engine_installer.ondisk.vms import VMInfo, parse_vm_json

log = logging.getLogger("engine_installer")
# A device pulled or a loop device detached while it is read.
VANISHED = (errno.ENOENT, errno.ENXIO, errno.ENODEV)
ESP_FIXED_OFFSET = ALIGNMENT + BIOS_BOOT_SIZE  # where every Engine layout puts its ESP


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
    names.sort()  # directory order is a hash order: list VMs the same way every time
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


def read_slot_release(disk: str, offset: int) -> dict[str, str]:
    """VERSION/BUILD from /etc/engine-release of the slot at offset ({} when unreadable)."""
    code, out = _debugfs(f"{disk}?offset={offset}", ["cat /etc/engine-release"])
    if code != 0:
        return {}
    values = dict(re.findall(r"^([A-Z]+)=(\S*)$", out, re.MULTILINE))
    return values if values.get("VERSION") else {}


def disk_signatures(path: str) -> list[str]:
    """Every signature libblkid finds on the whole device (partition tables, filesystems,
    RAID and LVM members), as wipefs --no-act lists them."""
    proc = subprocess.run(
        ["wipefs", "--no-act", "--json", path], capture_output=True, text=True, check=False
    )
    try:
        entries = json.loads(proc.stdout or "{}").get("signatures", [])
    except json.JSONDecodeError:
        return []
    return sorted({str(e.get("type", "")) for e in entries if e.get("type")})


def _state_for(version: str, media: Manifest | None) -> str:
    if media is None:
        return STATE_UPGRADEABLE
    order = compare_versions(version, media.version)
    if order > 0:
        return STATE_NEWER
    if order == 0:
        return STATE_SAME_VERSION
    return STATE_UPGRADEABLE


def inspect_disk(disk: DiskInfo, media: Manifest | None) -> DetectedInstall | None:
    """What is on one disk; None for a blank disk (nothing on it at all)."""
    found = DetectedInstall(disk=disk.path, state="", model=disk.model, size=disk.size)
    try:
        gpt = inspect_gpt(disk.path)
    except OSError as err:
        if err.errno in VANISHED:
            raise
        found.state = STATE_FOREIGN
        found.reason = f"the disk cannot be read ({err.strerror})"
        return found
    signatures = disk_signatures(disk.path)
    found.signatures = signatures
    labels = {p.name: (p.number, p.start, p.size) for p in gpt.partitions}
    found.partitions = {name: list(span) for name, span in labels.items()}
    engine = [label for label in ENGINE_LABELS if label in labels]
    if not gpt.found or not engine:
        return _non_engine(found, disk, gpt.found, signatures, media)
    found.problems = gpt.problems
    if gpt.problems:
        if not gpt.repairable:
            found.state = STATE_DAMAGED
            found.reason = "; ".join(gpt.problems)
            return found
        found.repairs.append(REPAIR_GPT)
    if not gpt.boot_code:
        # GRUB's BIOS boot code went with sector 0 (UEFI still boots from the ESP).
        found.problems.append("the BIOS boot code in sector 0 is missing")
        found.repairs.append(REPAIR_BIOS_BOOT)
    missing = [label for label in ENGINE_LABELS if label not in labels]
    if missing:
        found.state = STATE_DAMAGED
        found.reason = f"the Engine partition table lacks {', '.join(missing)}"
        return found
    # Partitions were written through their own nodes, whose caches the whole disk's does
    # not share: drop stale whole-disk blocks before reading at offsets (no data is written).
    with contextlib.suppress(OSError):
        esp.flush_device(disk.path)
    _read_engine(found, disk.path, labels, media)
    return found


def _non_engine(
    found: DetectedInstall,
    disk: DiskInfo,
    has_gpt: bool,
    signatures: list[str],
    media: Manifest | None,
) -> DetectedInstall | None:
    """A disk without Engine partition names: blank, foreign, or an Engine disk whose tables
    are both gone (its ESP still sits where every Engine layout puts it)."""
    copies = read_markers(lambda p: esp.read_file(disk.path, p, ESP_FIXED_OFFSET))
    if copies.marker is not None:
        found.state = STATE_DAMAGED
        found.version = str(copies.marker.get("version", ""))
        found.build = str(copies.marker.get("build", ""))
        found.reason = (
            "both copies of the partition table are lost, but the Engine install marker is "
            "still on the disk; its VMs may be recoverable: back them up before reinstalling"
        )
        return found
    if not has_gpt and not signatures:
        return None  # kernel partitions without any table on the disk are stale, not data
    found.state = STATE_FOREIGN
    if disk.partitions or has_gpt:
        parts = [f"{p.path} {p.fstype or 'unknown'}" for p in disk.partitions]
        found.reason = (
            "the disk holds another system ("
            + (", ".join(parts) if parts else "a partition table without Engine partitions")
            + ")"
        )
    else:
        found.reason = f"the disk holds {', '.join(signatures)} data (no Engine partitions)"
    return found


def _read_engine(
    found: DetectedInstall,
    path: str,
    labels: dict[str, tuple[int, int, int]],
    media: Manifest | None,
) -> None:
    esp_offset = labels[LABEL_ESP][1]
    copies = read_markers(lambda p: esp.read_file(path, p, esp_offset))
    found.problems += [f"install marker copy {p}" for p in copies.problems]
    releases = {slot: read_slot_release(path, labels[SLOT_LABELS[slot]][1]) for slot in SLOTS}
    marker = copies.marker
    if marker is None:
        if not any(releases.values()):
            found.state = STATE_DAMAGED
            found.reason = (
                "the EFI system partition holds no readable install marker and no slot holds "
                "a readable Engine"
            )
            return
        found.repairs.append(REPAIR_MARKER)
        marker = _marker_from_slots(releases)
    found.version = str(marker.get("version", ""))
    found.build = str(marker.get("build", ""))
    found.installed_at = str(marker.get("installed_at", ""))
    found.active_slot = str(marker.get("slot", ""))
    for slot, entry in (marker.get("slots") or {}).items():
        if slot in SLOTS and isinstance(entry, dict):
            found.slots[slot] = SlotInfo(str(entry.get("version", "")), str(entry.get("build", "")))
    if not marker.get("complete"):
        found.state = STATE_INCOMPLETE
        found.reason = f"the install of {found.version} build {found.build} never finished"
        return
    found.boot_chain = parse_record(esp.read_file(path, CHAIN_RECORD_PATH, esp_offset))
    env_raw = esp.read_file(path, GRUBENV_PATH, esp_offset)
    try:
        bootenv = parse_bootenv(env_raw, GRUBENV_PATH) if env_raw is not None else None
    except Exception:  # noqa: BLE001 - any parse failure means the same to the user
        bootenv = None
    if bootenv is None:
        # GRUB boots slot A when it cannot read the environment (see grub_config.py).
        found.repairs.append(REPAIR_BOOTENV)
        found.problems.append(
            "the boot environment (boot/grub/grubenv) is missing or unreadable; GRUB boots "
            "slot A until it is rewritten"
        )
        found.active_slot = "A"
    else:
        found.active_slot = bootenv.active
        if bootenv.trial and bootenv.tries > 0:
            found.trial_slot = bootenv.trial
            found.tries = bootenv.tries
    booting = found.trial_slot or found.active_slot
    if booting in found.slots and found.slots[booting].version:
        # The version that boots next is what is installed (an upgrade on trial counts).
        found.version = found.slots[booting].version
        found.build = found.slots[booting].build
    vms = read_vms(path, labels[LABEL_STORAGE][1])
    if vms is None:
        found.state = STATE_DAMAGED
        found.reason = "the storage partition holds no readable ext4 filesystem"
        return
    found.vms = vms
    try:
        state = _state_for(found.version, media)
    except Exception:  # noqa: BLE001 - a garbled version string in the marker
        found.state = STATE_DAMAGED
        found.reason = f"the install marker names an invalid version '{found.version}'"
        return
    if found.trial_slot:
        fallback = found.slots.get(found.active_slot)
        found.reason = (
            f"slot {found.trial_slot} is on trial ({found.tries} boot(s) left); "
            + (f"Engine {fallback.version} in " if fallback and fallback.version else "")
            + f"slot {found.active_slot} is the fallback"
        )
    if found.repairs:
        found.state = STATE_REPAIRABLE
        found.reason = "; ".join(found.problems)
        return
    found.state = state


def _marker_from_slots(releases: dict[str, dict[str, str]]) -> dict:
    """A stand-in marker built from what the slots say they hold (the marker copies are gone)."""
    slot = "A" if releases.get("A") else "B"
    return {
        "product": releases[slot].get("PRODUCT", "Engine"),
        "version": releases[slot].get("VERSION", ""),
        "build": releases[slot].get("BUILD", ""),
        "slot": slot,
        "complete": True,
        "slots": {
            s: {"version": r.get("VERSION", ""), "build": r.get("BUILD", "")}
            for s, r in releases.items()
            if r
        },
    }


def _inspect_or_skip(disk: DiskInfo, media: Manifest | None) -> DetectedInstall | None:
    try:
        return inspect_disk(disk, media)
    except OSError as err:
        if err.errno not in VANISHED:
            raise
        log.warning("%s vanished during detection (%s); skipped", disk.path, err)
        return None


def detect_installs(disks: list[DiskInfo], media: Manifest | None) -> list[DetectedInstall]:
    """Every Engine (or foreign) install on the given disks; blank disks are not listed."""
    if not disks:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(disks))) as pool:
        results = list(pool.map(lambda d: _inspect_or_skip(d, media), disks))
    return [r for r in results if r is not None]
