"""QEMU user-mode networking for network-boot tests: the guest reaches only what a test allows.

    args = boot_network("bios-pxe", tftp=export_dir, http_port=server.port)  # SeaBIOS
    args = boot_network("uefi-pxe", tftp=export_dir, http_port=server.port)  # OVMF (+ Secure Boot)
    args = boot_network("uefi-http", http_port=server.port)                  # OVMF HTTP boot
    VM(..., extra_args=args + smbios_serial("LAPTOP-1"))

restrict=on cuts the guest off from the host and the world; QEMU's built-in DHCP server hands
out the boot file (GRUB's PXE image for BIOS, shim for UEFI PXE, the ISO's http:// URL for UEFI
HTTP boot: libslirp then also sends the HTTPClient vendor class that UEFI firmware requires) and
its built-in TFTP server serves `tftp`. The guest's HTTP server HTTP_HOST:80 (and any extra
guest ports) is a guestfwd to a server the test runs on 127.0.0.1: each guest connection runs
`busybox nc` to it (a chardev guestfwd would carry one connection only; busybox is a make-setup
package).
"""

from __future__ import annotations

from pathlib import Path

HTTP_HOST = "10.0.2.100"  # the test's HTTP server as the guest sees it
HTTP_URL = f"http://{HTTP_HOST}/"
BIOS_BOOT_FILE = "boot/grub/i386-pc/core.0"
UEFI_BOOT_FILE = "uefi/shimx64.efi"
METHODS = ("bios-pxe", "uefi-pxe", "uefi-http")


def _forward(guest_port: int, host_port: int) -> str:
    return f"guestfwd=tcp:{HTTP_HOST}:{guest_port}-cmd:busybox nc 127.0.0.1 {host_port}"


def boot_network(
    method: str,
    *,
    http_port: int,
    tftp: Path | None = None,
    iso_url: str = f"{HTTP_URL}engine.iso",
    extra_forwards: dict[int, int] | None = None,
) -> list[str]:
    """QEMU arguments: one virtio NIC that the firmware boots from (bootindex 0), by `method`:
    bios-pxe (SeaBIOS), uefi-pxe or uefi-http (OVMF, with or without Secure Boot)."""
    forwards = {80: http_port, **(extra_forwards or {})}
    options = ["user", "id=net0", "restrict=on"]
    options += [_forward(guest, host) for guest, host in sorted(forwards.items())]
    firmware_args: list[str] = []
    if method in ("bios-pxe", "uefi-pxe"):
        if tftp is None:
            raise ValueError("PXE needs the TFTP directory (the export)")
        boot_file = BIOS_BOOT_FILE if method == "bios-pxe" else UEFI_BOOT_FILE
        options += [f"tftp={tftp}", f"bootfile={boot_file}"]
    elif method == "uefi-http":
        options.append(f"bootfile={iso_url}")
        # PXE off, as on a laptop set to HTTP boot: otherwise OVMF first tries PXE with the URL
        # for a minute.
        firmware_args = [
            "-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=n",
            "-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n",
        ]  # fmt: skip
    else:
        raise ValueError(f"method must be one of {METHODS}, not {method}")
    # SeaBIOS boots through the NIC's iPXE option ROM (QEMU's default romfile); OVMF uses its
    # own virtio-net driver and network stack (romfile= keeps iPXE out).
    device = "virtio-net-pci,netdev=net0,bootindex=0"
    if method != "bios-pxe":
        device += ",romfile="
    return ["-netdev", ",".join(options), "-device", device, *firmware_args]


def smbios_serial(serial: str) -> list[str]:
    """The machine's DMI serial number (what engine.autoinstall's {serial} becomes)."""
    return ["-smbios", f"type=1,serial={serial}"]
