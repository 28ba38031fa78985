"""The on-disk layout of an installed Engine (GPT), shared by the writer and by detection."""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024 * 1024

LABEL_BIOS = "engine-bios"
LABEL_ESP = "engine-esp"
LABEL_ROOT_A = "engine-root-a"
LABEL_ROOT_B = "engine-root-b"
LABEL_STORAGE = "engine-storage"
ENGINE_LABELS = (LABEL_BIOS, LABEL_ESP, LABEL_ROOT_A, LABEL_ROOT_B, LABEL_STORAGE)

SLOTS = ("A", "B")
SLOT_LABELS = {"A": LABEL_ROOT_A, "B": LABEL_ROOT_B}
SLOT_PARTITION_NUMBERS = {"A": 3, "B": 4}
ESP_NUMBER = 2
STORAGE_NUMBER = 5
BIOS_NUMBER = 1

BIOS_BOOT_SIZE = 1 * MiB
# 300 MiB, not 256: FAT32 needs >= 65525 clusters, which 256 MiB misses on 4Kn disks.
ESP_SIZE = 300 * MiB
STORAGE_MIN_SIZE = 256 * MiB
ALIGNMENT = 1 * MiB

# Files on the ESP (FAT32).
MARKER_PATH = "engine/install.json"  # the install marker (first copy)
MARKER_PATHS = (MARKER_PATH, "engine/install.2.json")  # two copies: see ondisk/marker.py
GRUB_DIR = "boot/grub"  # grub.cfg + grubenv (the boot environment), shared by BIOS and UEFI
GRUBENV_PATH = "boot/grub/grubenv"
# Per-slot boot options (kernel arguments, keymap): a GRUB environment block per slot.
SLOT_ENV_PATHS = {"A": "boot/grub/slot-A.env", "B": "boot/grub/slot-B.env"}
EFI_REMOVABLE_PATH = "EFI/BOOT/BOOTX64.EFI"

# Files on the storage partition (ext4).
VMS_DIR = "vms"  # vms/<name>/vm.json
LOG_DIR_ON_STORAGE = "engine/logs"
CONFIG_PATH = "engine/config.json"  # keyboard, kernel arguments, installed version
REPORTS_DIR = "engine/reports"  # one upgrade report per installer run
TRUST_DIR = "engine/trust"  # PEM certificates whose update kits this Engine installs
UPDATES_DIR = "engine/updates"  # update kits staged by engine-update stage
UPDATE_STATUS_PATH = "engine/update-status.json"  # the update kit status (docs/update-kit.md)


def slot_other(slot: str) -> str:
    return "B" if slot == "A" else "A"


@dataclass(frozen=True)
class PartitionSpec:
    number: int
    label: str
    start: int  # bytes
    size: int  # bytes


def minimum_disk_size(slot_size: int) -> int:
    """Smallest disk that holds the layout: 1 MiB lead-in + partitions + backup GPT."""
    return ALIGNMENT + BIOS_BOOT_SIZE + ESP_SIZE + 2 * slot_size + STORAGE_MIN_SIZE + ALIGNMENT


def compute_layout(disk_size: int, slot_size: int) -> list[PartitionSpec]:
    """Partition table for a disk of disk_size bytes; storage takes the rest (MiB aligned)."""
    specs = []
    start = ALIGNMENT
    for number, label, size in (
        (1, LABEL_BIOS, BIOS_BOOT_SIZE),
        (2, LABEL_ESP, ESP_SIZE),
        (3, LABEL_ROOT_A, slot_size),
        (4, LABEL_ROOT_B, slot_size),
    ):
        specs.append(PartitionSpec(number, label, start, size))
        start += size
    # Leave the last MiB for the backup GPT (33 sectors), aligned down.
    end = (disk_size - ALIGNMENT) // ALIGNMENT * ALIGNMENT
    specs.append(PartitionSpec(5, LABEL_STORAGE, start, end - start))
    return specs


def partition_path(disk: str, number: int) -> str:
    """/dev/sda + 1 → /dev/sda1; /dev/loop0 + 1 → /dev/loop0p1 (names ending in a digit)."""
    return f"{disk}p{number}" if disk[-1].isdigit() else f"{disk}{number}"
