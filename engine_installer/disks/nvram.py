"""The firmware boot entry for an installed Engine: "Engine" → EFI/debian/shimx64.efi on its ESP.

The removable-media path (EFI/BOOT/BOOTX64.EFI) boots any disk without an entry, but firmware
tries removable devices in its own order, so a USB stick left in the laptop could take over the
boot. An entry of its own, first in BootOrder (efibootmgr puts a new entry first), makes the
laptop start Engine's own chain. Only on the Engine live system: run anywhere else (a
developer's machine installing onto a loop device) it would rewrite that machine's boot order.
A failure is logged, not fatal: the removable path still boots.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from pathlib import Path

from engine_installer.ondisk.bootchain import VENDOR_DIR

log = logging.getLogger("engine_installer")
LIVE_SYSTEM = Path("/run/live/medium")
EFIVARS = Path("/sys/firmware/efi/efivars")
LABEL = "Engine"
LOADER = "\\" + f"{VENDOR_DIR}/shimx64.efi".replace("/", "\\")


def _efibootmgr(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["efibootmgr", *args], capture_output=True, text=True, check=False)


def _partuuid(partition: str) -> str:
    proc = subprocess.run(["blkid", "-p", "-s", "PART_ENTRY_UUID", "-o", "value", partition],
                          capture_output=True, text=True, check=False)  # fmt: skip
    return proc.stdout.strip()


def register(disk: str, esp_number: int, esp_partition: str) -> str:
    """Create the Engine boot entry for disk's ESP; returns what was done, for the log."""
    if not LIVE_SYSTEM.is_dir():
        return "boot entry: not on the Engine live system, firmware boot order left alone"
    if not EFIVARS.is_dir():
        return "boot entry: not booted in UEFI mode, nothing to register"
    if shutil.which("efibootmgr") is None:
        log.warning("efibootmgr is missing from the live system: no firmware boot entry")
        return "boot entry: efibootmgr missing"
    partuuid = _partuuid(esp_partition)
    listing = _efibootmgr("-v")
    # An earlier entry for this very ESP (an upgrade or a repeated install): replace it.
    for number, label, path in re.findall(r"^Boot([0-9A-Fa-f]{4})\*? (.*?)\t(.*)$",
                                          listing.stdout, re.MULTILINE):  # fmt: skip
        if label.strip() == LABEL and partuuid and partuuid.lower() in path.lower():
            _efibootmgr("--delete-bootnum", "--bootnum", number)
    proc = _efibootmgr("--create", "--disk", disk, "--part", str(esp_number),
                       "--label", LABEL, "--loader", LOADER)  # fmt: skip
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        log.warning("could not add the firmware boot entry (%s); the removable path boots", detail)
        return f"boot entry: efibootmgr failed ({detail})"
    return f"boot entry: {LABEL} → {LOADER} on {disk} partition {esp_number}, first in BootOrder"
