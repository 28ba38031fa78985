"""Names shared by the export (build side) and the live system: files, kernel arguments."""

from __future__ import annotations

import shlex

# Files in an export directory (paths relative to it, the same over TFTP and HTTP).
ISO_NAME = "engine.iso"  # the installer ISO itself: UEFI HTTP boot file, live-boot fetch= source
KERNEL = "live/vmlinuz"  # the ISO's kernel and initrd, for PXE (GRUB loads them)
INITRD = "live/initrd.img"
GRUB_SUBDIR = "boot/grub"  # grub-mknetdir's --subdir; grub.cfg is the PXE menu
BIOS_BOOT_FILE = "boot/grub/i386-pc/core.0"  # the DHCP filename for BIOS PXE clients
# UEFI PXE (Secure Boot too): shim is the DHCP filename; it starts grubx64.efi from its own
# directory, Debian's signed network GRUB, which reads grub/grub.cfg (its prefix is /grub).
UEFI_FILES = {"shim": "uefi/shimx64.efi", "grub": "uefi/grubx64.efi", "mm": "uefi/mmx64.efi"}
UEFI_BOOT_FILE = UEFI_FILES["shim"]
NET_GRUB_CFG = "grub/grub.cfg"
ARGS_NAME = "netboot-args.txt"  # engine.* arguments a UEFI HTTP boot of the ISO takes over
INFO_NAME = "netboot.json"  # what was exported, for the lab server and for people
DHCP_NAME = "dhcp.txt"  # the DHCP settings printed by the export
REPORTS_DIR = "reports"  # where the lab server keeps POSTed install reports

# Kernel arguments.
NETBOOT_ARG = "engine.netboot"  # the export's base URL; set by the PXE menu
AUTOINSTALL_ARG = "engine.autoinstall"
REPORT_ARG = "engine.report"
# Only these may come from ARGS_NAME (never anything the kernel or live-boot reads).
SITE_ARGS = (AUTOINSTALL_ARG, REPORT_ARG)

# UEFI HTTP boot clients send this vendor class (DHCP option 60) and expect it back.
HTTP_CLIENT_CLASS = "HTTPClient"

# In the live system: what live.py found out about the network boot.
STATE_FILE = "/run/engine-installer/netboot.json"


def is_url(value: str) -> bool:
    """An answer-file location fetched over the network (netboot/answers.py)."""
    return value.startswith(("http://", "https://"))


def cmdline_value(cmdline: str, name: str) -> str | None:
    """The last name=value on a kernel command line (None when absent, "" when bare)."""
    value = None
    for arg in shlex.split(cmdline):
        if arg == name:
            value = ""
        elif arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
    return value
