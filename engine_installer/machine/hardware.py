"""What the hardware check needs from the machine: DMI, CPU, memory, firmware, storage
controllers (read-only: sysfs, procfs, psutil). machine.probe.probe_machine assembles them.

`root` lets tests point the sysfs/procfs reads at a recorded tree; on a real machine it is "/".
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import psutil

from engine_installer.machine.snapshot import MachineSnapshot, StorageController

# Identity strings only: serial numbers and UUIDs stay out of snapshots and profile drafts.
DMI_KEYS = (
    "sys_vendor",
    "product_name",
    "product_version",
    "product_family",
    "product_sku",
    "board_vendor",
    "board_name",
    "bios_vendor",
    "bios_version",
    "bios_date",
    "chassis_type",
)
# Intel VMD PCI device ids from the Linux vmd driver's table (drivers/pci/controller/vmd.c),
# so VMD is recognised even when the vmd driver is not loaded and no disk shows up.
INTEL_VMD_IDS = {"201d", "28c0", "467f", "4c3d", "7d0b", "9a0b", "a77f", "ad0b", "b60b", "b06f"}
_PCI_ADDR = re.compile(r"^[0-9a-f]{4,5}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return ""


def probe_dmi(root: Path) -> dict[str, str]:
    base = root / "sys/class/dmi/id"
    return {k: v for k in DMI_KEYS if (v := _read(base / k))}


def probe_cpu(root: Path) -> tuple[str, list[str]]:
    """Model name and flags of the first CPU, including the 'vmx flags' line (ept lives
    there on newer kernels); the kernel drops vmx when the firmware disabled VT-x."""
    model, flags = "", set()
    for line in _read(root / "proc/cpuinfo").splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if not key and model:
            break  # end of the first processor block
        if key == "model name":
            model = value.strip()
        elif key in ("flags", "vmx flags"):
            flags.update(value.split())
    return model, sorted(flags)


def classify_controller(vendor: str, device: str, pci_class: str, driver: str) -> str:
    if driver == "vmd" or (vendor == "8086" and device in INTEL_VMD_IDS):
        return "vmd"
    if vendor == "1af4":
        return "virtio"
    sub = pci_class[:4]
    return {"0104": "raid", "0106": "ahci", "0108": "nvme", "0101": "ide"}.get(sub, "other")


def probe_controllers(root: Path) -> list[StorageController]:
    out = []
    for dev in sorted((root / "sys/bus/pci/devices").glob("*")):
        pci_class = _read(dev / "class").removeprefix("0x")
        if not pci_class.startswith("01"):  # mass-storage class only
            continue
        vendor = _read(dev / "vendor").removeprefix("0x")
        device = _read(dev / "device").removeprefix("0x")
        driver = os.path.basename(os.readlink(dev / "driver")) if (dev / "driver").exists() else ""
        remapped = _read(dev / "remapped_nvme")
        out.append(
            StorageController(
                address=dev.name,
                kind=classify_controller(vendor, device, pci_class, driver),
                driver=driver,
                vendor_id=vendor,
                device_id=device,
                remapped_nvme=int(remapped) if remapped.isdigit() else 0,
            )
        )
    return out


def disk_controller(root: Path, name: str) -> str:
    """Driver of the controller a block device hangs off: the nearest PCI function's driver,
    or 'vmd' if any ancestor is the VMD domain; virtio reports virtio_blk / virtio_scsi."""
    dev = (root / "sys/block" / name).resolve()
    nearest, child_driver = "", ""
    for parent in dev.parents:
        link = parent / "driver"
        driver = os.path.basename(os.readlink(link)) if link.is_symlink() else ""
        if driver == "vmd":
            return "vmd"
        if _PCI_ADDR.match(parent.name) and not nearest:
            nearest = driver
            if driver == "virtio-pci" and child_driver:
                nearest = child_driver
        elif driver and not nearest:
            child_driver = driver
    return nearest


# The EFI global variable SecureBoot: 4 bytes of attributes, then 1 (enforcing) or 0.
SECURE_BOOT_VAR = "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"


def probe_secure_boot(root: Path) -> str:
    """on / off as the firmware reports it; unsupported when booted in legacy BIOS mode."""
    if not (root / "sys/firmware/efi").is_dir():
        return "unsupported"
    try:
        data = (root / SECURE_BOOT_VAR).read_bytes()
    except OSError:
        return "off"  # no variable: firmware without Secure Boot
    return "on" if len(data) >= 5 and data[4] == 1 else "off"


def probe_hardware(root: Path = Path("/")) -> MachineSnapshot:
    """Everything but the disks (machine.probe.probe_machine adds those)."""
    model, flags = probe_cpu(root)
    memory = psutil.virtual_memory().total if root == Path("/") else 0
    if root != Path("/"):
        for line in _read(root / "proc/meminfo").splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
    return MachineSnapshot(
        dmi=probe_dmi(root),
        cpu_model=model,
        cpu_flags=flags,
        cpu_count=psutil.cpu_count() or 0,
        memory_bytes=memory,
        firmware="uefi" if (root / "sys/firmware/efi").is_dir() else "bios",
        secure_boot=probe_secure_boot(root),
        acpi_dmar=(root / "sys/firmware/acpi/tables/DMAR").exists(),
        storage_controllers=probe_controllers(root),
        description="probed live",
    )
