"""The DHCP settings a site's DHCP server needs for an export, for ISC dhcpd and dnsmasq.

BIOS PXE clients (client architecture 0) get GRUB's PXE image over TFTP from next-server; UEFI
PXE clients (architectures 7 and 9) get shim, which boots Debian's signed network GRUB (Secure
Boot on or off). UEFI HTTP boot clients announce the vendor class "HTTPClient" and take only an
offer that carries the same vendor class and an http:// URL as the boot file: the ISO itself.
The HTTP rule matches the vendor class, not the architecture, because the installer asks again
the same way once it runs from the RAM disk, to find the server it came from (live.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine_installer.netboot.names import (
    BIOS_BOOT_FILE,
    HTTP_CLIENT_CLASS,
    ISO_NAME,
    UEFI_BOOT_FILE,
)

if TYPE_CHECKING:
    from engine_installer.iso.net.export import BaseURL

PLACEHOLDER = "SERVER"  # stands for this machine's address when --url was not given


def settings(url: BaseURL) -> str:
    """The text printed after an export (and saved as dhcp.txt)."""
    tftp = url.host if url.known else PLACEHOLDER
    iso_url = url.join(ISO_NAME) if url.known else f"http://{PLACEHOLDER}/{ISO_NAME}"
    note = (
        ""
        if url.known
        else f"# Replace {PLACEHOLDER} with the address of the machine serving the export\n"
        "# (TFTP and HTTP on port 80; or export again with --url).\n"
    )
    vendor = f"substring (option vendor-class-identifier, 0, {len(HTTP_CLIENT_CLASS)})"
    return f"""\
# DHCP settings for Engine network boot.
# BIOS PXE: TFTP from {tftp}, boot file {BIOS_BOOT_FILE}
# UEFI PXE (Secure Boot on or off): TFTP from {tftp}, boot file {UEFI_BOOT_FILE}
# UEFI HTTP boot: {iso_url}
{note}
# --- ISC dhcpd (dhcpd.conf) ---
# at the top level:
option arch code 93 = unsigned integer 16;
# inside the subnet {{ }} of the laptops:
if {vendor} = "{HTTP_CLIENT_CLASS}" {{
  option vendor-class-identifier "{HTTP_CLIENT_CLASS}";
  filename "{iso_url}";
}} elsif option arch = 00:07 or option arch = 00:09 {{
  next-server {tftp};
  filename "{UEFI_BOOT_FILE}";
}} elsif option arch = 00:00 {{
  next-server {tftp};
  filename "{BIOS_BOOT_FILE}";
}}

# --- dnsmasq (dnsmasq.conf), with its own DHCP range for the laptops ---
dhcp-match=set:bios,option:client-arch,0
dhcp-match=set:efi64,option:client-arch,7
dhcp-match=set:efi64,option:client-arch,9
dhcp-vendorclass=set:httpboot,{HTTP_CLIENT_CLASS}
dhcp-option-force=tag:httpboot,60,{HTTP_CLIENT_CLASS}
dhcp-boot=tag:httpboot,{iso_url}
dhcp-boot=tag:bios,{BIOS_BOOT_FILE},,{tftp}
dhcp-boot=tag:efi64,{UEFI_BOOT_FILE},,{tftp}
"""
