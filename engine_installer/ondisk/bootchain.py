"""The signed UEFI boot chain on an Engine ESP: where its files go, its version record, and
whether a payload's chain is newer than the one installed.

Files on the ESP (FAT32), written by disks/efi_chain.py:
    EFI/debian/shimx64.efi, grubx64.efi, mmx64.efi, grub.cfg   the chain's own directory
    EFI/BOOT/BOOTX64.EFI (shim), grubx64.efi, mmx64.efi          the removable-media path
    engine/boot-chain.json   {"shim": <shim-signed version>,
                              "grub": <grub-efi-amd64-signed version>}

Debian's signed GRUB takes /EFI/debian on the ESP it was started from as its prefix and reads
EFI/debian/grub.cfg: a stub that hands over to the boot menu shared with BIOS GRUB
(boot/grub/grub.cfg on the same ESP), whichever of the two paths the firmware started.
"""

from __future__ import annotations

import json
import subprocess

from engine_installer.base.errors import UserError
from engine_installer.ondisk.payload import CHAIN_COMPONENTS

VENDOR_DIR = "EFI/debian"
REMOVABLE_DIR = "EFI/BOOT"
STUB_PATH = f"{VENDOR_DIR}/grub.cfg"
RECORD_PATH = "engine/boot-chain.json"
# Payload artifact → its file names in EFI/debian and EFI/BOOT. The order is the order of
# replacement on an upgrade: GRUB, then the MOK manager, then shim. An old shim checks a new
# GRUB like any GRUB signed with Debian's key; a new shim may carry an SBAT policy that revokes
# the old GRUB, so shim goes last.
CHAIN_FILES = (
    ("grub", "grubx64.efi", "grubx64.efi"),
    ("mm", "mmx64.efi", "mmx64.efi"),
    ("shim", "shimx64.efi", "BOOTX64.EFI"),
)


def vendor_paths() -> list[tuple[str, str]]:
    """(artifact, ESP path) of the chain's own directory, in replacement order."""
    return [(artifact, f"{VENDOR_DIR}/{name}") for artifact, name, _ in CHAIN_FILES]


def removable_paths() -> list[tuple[str, str]]:
    """(artifact, ESP path) of the removable-media path, in replacement order."""
    return [(artifact, f"{REMOVABLE_DIR}/{name}") for artifact, _, name in CHAIN_FILES]


def chain_paths() -> list[tuple[str, str]]:
    """Every chain file: EFI/debian's complete set first, then EFI/BOOT's. Replaced in this
    order, one directory always holds a whole chain, old or new, while the other changes."""
    return vendor_paths() + removable_paths()


def stub_config() -> str:
    return """\
# Engine: Debian's signed GRUB reads this file (its prefix is /EFI/debian on the ESP it was
# started from, so $root is that ESP). The boot menu, shared with BIOS GRUB, is next to the
# boot environment in /boot/grub on the same ESP.
set prefix=($root)/boot/grub
configfile ($root)/boot/grub/grub.cfg
"""


def record_bytes(versions: dict[str, str]) -> bytes:
    return (json.dumps(dict(sorted(versions.items())), indent=2) + "\n").encode()


def parse_record(data: bytes | None) -> dict[str, str]:
    """The installed chain's versions; {} when there is no chain (or no readable record)."""
    if not data:
        return {}
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if k in CHAIN_COMPONENTS and isinstance(v, str)}


def debian_version_newer(a: str, b: str) -> bool:
    """True when Debian version a is newer than b (dpkg's own comparison)."""
    try:
        proc = subprocess.run(["dpkg", "--compare-versions", a, "gt", b], capture_output=True)
    except FileNotFoundError:
        raise UserError("dpkg is not installed: the installer needs Debian's dpkg") from None
    if proc.returncode not in (0, 1):
        raise UserError(f"boot chain versions {a!r} / {b!r} are not Debian versions: rebuild")
    return proc.returncode == 0


def chain_is_newer(payload: dict[str, str], installed: dict[str, str]) -> bool:
    """Whether an upgrade should put the payload's chain on the ESP.

    Yes when the ESP has no (complete) chain record, e.g. an Engine installed before Secure
    Boot support, or when some component is newer and none older: a GRUB or shim is never
    downgraded (an older one may be revoked by the firmware's SBAT or dbx updates)."""
    if not payload:
        return False
    if sorted(installed) != sorted(CHAIN_COMPONENTS):
        return True
    newer = [c for c in CHAIN_COMPONENTS if debian_version_newer(payload[c], installed[c])]
    older = [c for c in CHAIN_COMPONENTS if debian_version_newer(installed[c], payload[c])]
    return bool(newer) and not older
