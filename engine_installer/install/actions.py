"""The disk plan as data (the curtin pattern): an ordered list of actions, validated before
anything runs, printable for --dry-run, and executed one by one by runner.py.

Each action names its target device and says whether it destroys what is there (wipe) or keeps
it (preserve). Validation enforces the safety rules in one place: an upgrade never wipes and
never touches storage or the slot that boots today; an install marks itself complete last.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine_installer.base.errors import UserError
from engine_installer.ondisk.layout import (
    ALIGNMENT,
    LABEL_ESP,
    LABEL_STORAGE,
    SLOT_PARTITION_NUMBERS,
    PartitionSpec,
    compute_layout,
    partition_path,
    slot_other,
)
from engine_installer.ondisk.payload import Manifest

ESP_NUMBER = 2
STORAGE_NUMBER = 5
KINDS = (
    "partition",
    "format",
    "marker",
    "write-slot",
    "verify-slot",
    "bootloader",
    "bootchain",
    "bootenv",
    "config",
)


@dataclass(frozen=True)
class DiskAction:
    kind: str
    target: str  # the device the action writes (or reads, for verify-slot)
    description: str  # one line for --dry-run and the log
    params: dict[str, Any] = field(default_factory=dict)
    wipe: bool = False  # destroys what the target holds
    preserve: bool = False  # explicitly keeps what the target holds


def _human(size: int) -> str:
    for unit, div in (("GiB", 1024**3), ("MiB", 1024**2)):
        if size >= div:
            return f"{size / div:.1f} {unit}"
    return f"{size} B"


def install_actions(
    disk: str,
    disk_size: int,
    manifest: Manifest,
    keyboard: str,
    kernel_args: list[str],
    disk_serial: str = "",
    reinstall: bool = False,
) -> list[DiskAction]:
    """New GPT, filesystems, slot A, boot loader, boot environment, marker complete last."""
    specs = compute_layout(disk_size, manifest.slot_size)
    esp = partition_path(disk, ESP_NUMBER)
    storage = partition_path(disk, STORAGE_NUMBER)
    slot_a = partition_path(disk, SLOT_PARTITION_NUMBERS["A"])
    table = "; ".join(f"{s.number} {s.label} {_human(s.size)}" for s in specs)
    verb = "wipe everything and write" if reinstall else "write"
    return [
        DiskAction(
            "partition", disk, f"{verb} a new GPT on {disk}: {table}", {"specs": specs}, wipe=True
        ),
        DiskAction(
            "format",
            esp,
            f"make FAT32 (EFI system partition) on {esp}",
            {"fstype": "vfat"},
            wipe=True,
        ),
        DiskAction(
            "marker",
            esp,
            f"write install marker (complete=false) on {esp}",
            {"mode": "new", "slot": "A", "disk_serial": disk_serial},
        ),
        DiskAction(
            "format", storage, f"make ext4 (storage) on {storage}", {"fstype": "ext4"}, wipe=True
        ),
        DiskAction(
            "write-slot",
            slot_a,
            f"write {manifest.label()} slot image ({_human(manifest.root_image.size)}) "
            f"into slot A {slot_a}",
            {"slot": "A"},
            wipe=True,
        ),
        DiskAction(
            "verify-slot",
            slot_a,
            f"read back slot A {slot_a} against the manifest SHA-256",
            {"slot": "A"},
        ),
        DiskAction(
            "bootloader",
            disk,
            f"install GRUB for BIOS (engine-bios) and UEFI ({esp} {_uefi_files(manifest)})",
            {"kernel_args": list(kernel_args)},
        ),
        DiskAction(
            "bootenv",
            esp,
            "boot environment: active slot A",
            {"active": "A", "trial": "", "tries": 0},
        ),
        DiskAction(
            "config",
            storage,
            f"write engine/config.json on {storage}: keyboard {keyboard}",
            {"keyboard": keyboard, "kernel_args": list(kernel_args)},
        ),
        DiskAction("marker", esp, f"mark the install complete on {esp}", {"mode": "complete"}),
    ]


def _uefi_files(manifest: Manifest) -> str:
    if manifest.boot_chain:
        return "EFI/debian and EFI/BOOT: shim and signed GRUB, for Secure Boot; boot entry Engine"
    return "EFI/BOOT/BOOTX64.EFI"


def _chain_words(versions: dict[str, str]) -> str:
    return ", ".join(f"{name} {version}" for name, version in sorted(versions.items()))


def bootchain_action(disk: str, manifest: Manifest, installed: dict[str, str]) -> DiskAction:
    esp = partition_path(disk, ESP_NUMBER)
    was = f" (was {_chain_words(installed)})" if installed else " (was GRUB without Secure Boot)"
    return DiskAction(
        "bootchain",
        esp,
        f"update the signed boot chain on {esp} to {_chain_words(manifest.boot_chain)}{was}: "
        "new files beside the old, then renamed; boot entry Engine",
        {"versions": dict(manifest.boot_chain)},
    )


def upgrade_actions(
    disk: str, manifest: Manifest, active_slot: str, chain_from: dict[str, str] | None = None
) -> list[DiskAction]:
    """New version into the inactive slot, verified, then the atomic boot-environment switch.

    chain_from: the ESP's boot chain versions when the payload's chain is newer and replaces
    it (before the switch, so the old slot keeps booting whatever happens); None leaves the
    ESP's loader alone."""
    new = slot_other(active_slot)
    target = partition_path(disk, SLOT_PARTITION_NUMBERS[new])
    esp = partition_path(disk, ESP_NUMBER)
    storage = partition_path(disk, STORAGE_NUMBER)
    chain = [] if chain_from is None else [bootchain_action(disk, manifest, chain_from)]
    return [
        DiskAction(
            "write-slot",
            target,
            f"write {manifest.label()} slot image into inactive slot {new} {target} "
            f"(slot {active_slot} keeps booting until the switch)",
            {"slot": new},
            wipe=True,
        ),
        DiskAction(
            "verify-slot",
            target,
            f"read back slot {new} {target} against the manifest SHA-256",
            {"slot": new},
        ),
        DiskAction(
            "marker",
            esp,
            f"record slot {new} = {manifest.version} in the marker's slot table",
            {"mode": "slot-table", "slot": new},
        ),
        *chain,
        DiskAction(
            "bootenv",
            esp,
            f"switch: try slot {new} (3 boots), fall back to slot {active_slot}",
            {"active": active_slot, "trial": new, "tries": 3},
        ),
        DiskAction(
            "marker",
            esp,
            f"record {manifest.version} in slot {new} as the default",
            {"mode": "switch", "slot": new},
        ),
        DiskAction(
            "config", storage, f"keep storage {storage} (VMs, data, config)", {}, preserve=True
        ),
    ]


def _check_specs(specs: list[PartitionSpec], disk_size: int) -> None:
    end = ALIGNMENT
    for spec in specs:
        if spec.start < end or spec.start % ALIGNMENT or spec.size <= 0:
            raise UserError(f"internal layout error at partition {spec.number}: report a bug")
        end = spec.start + spec.size
    if end > disk_size - ALIGNMENT // 2:
        raise UserError("internal layout error: partitions exceed the disk; report a bug")


def validate_actions(
    actions: list[DiskAction], kind: str, disk: str, disk_size: int, active_slot: str = ""
) -> None:
    """Refuse a plan that breaks a safety rule; runs before anything is written."""
    for action in actions:
        if action.kind not in KINDS:
            raise UserError(f"internal error: unknown disk action {action.kind}; report a bug")
        if not action.target.startswith(disk):
            raise UserError(f"internal error: action {action.kind} leaves {disk}; report a bug")
    if kind in ("install", "reinstall"):
        if actions[0].kind != "partition":
            raise UserError("internal error: an install must start with partitioning")
        _check_specs(actions[0].params["specs"], disk_size)
        last = actions[-1]
        if last.kind != "marker" or last.params.get("mode") != "complete":
            raise UserError("internal error: the install marker must be written last")
        labels = [s.label for s in actions[0].params["specs"]]
        if LABEL_ESP not in labels or LABEL_STORAGE not in labels:
            raise UserError("internal error: layout lacks ESP or storage; report a bug")
        return
    # Upgrade: nothing wiped except the inactive slot, storage preserved, switch after verify.
    storage = partition_path(disk, STORAGE_NUMBER)
    active = partition_path(disk, SLOT_PARTITION_NUMBERS[active_slot])
    verified = False
    for action in actions:
        if action.target in (storage, active) and not action.preserve:
            raise UserError(f"internal error: upgrade would write {action.target}; report a bug")
        if action.kind in ("partition", "format"):
            raise UserError("internal error: an upgrade never repartitions or formats")
        if action.kind == "verify-slot":
            verified = True
        if action.kind == "bootenv" and not verified:
            raise UserError("internal error: boot switch before the slot is verified")


def format_actions(actions: list[DiskAction]) -> str:
    lines = []
    for number, action in enumerate(actions, 1):
        tag = " [wipe]" if action.wipe else " [keep]" if action.preserve else ""
        lines.append(f"{number:2}. {action.kind:<11} {action.description}{tag}")
    return "\n".join(lines)
