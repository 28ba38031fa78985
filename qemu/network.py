"""QEMU user-mode networking for network-boot tests: the guest reaches only what a test allows.

    args = boot_network("bios", tftp=export_dir, http_port=server.port)   # BIOS PXE
    args = boot_network("uefi", http_port=server.port)                    # UEFI HTTP boot
    VM(..., extra_args=args + smbios_serial("LAPTOP-1"))

restrict=on cuts the guest off from the host and the world; QEMU's built-in DHCP server hands
out the boot file (GRUB's PXE image for BIOS, the ISO's http:// URL for UEFI HTTP boot: libslirp
then also sends the HTTPClient vendor class that UEFI firmware requires) and its built-in TFTP
server serves `tftp`. The guest's HTTP server HTTP_HOST:80 (and any extra guest ports) is a
guestfwd to a server the test runs on 127.0.0.1: each guest connection runs `busybox nc` to it
(a chardev guestfwd would carry one connection only; busybox is a make-setup package).
"""

from __future__ import annotations

from pathlib import Path

HTTP_HOST = "10.0.2.100"  # the test's HTTP server as the guest sees it
HTTP_URL = f"http://{HTTP_HOST}/"
BIOS_BOOT_FILE = "boot/grub/i386-pc/core.0"


def _forward(guest_port: int, host_port: int) -> str:
    return f"guestfwd=tcp:{HTTP_HOST}:{guest_port}-cmd:busybox nc 127.0.0.1 {host_port}"


def boot_network(
    firmware: str,
    *,
    http_port: int,
    tftp: Path | None = None,
    iso_url: str = f"{HTTP_URL}engine.iso",
    extra_forwards: dict[int, int] | None = None,
) -> list[str]:
    """QEMU arguments: one virtio NIC that the firmware boots from (bootindex 0)."""
    forwards = {80: http_port, **(extra_forwards or {})}
    options = ["user", "id=net0", "restrict=on"]
    options += [_forward(guest, host) for guest, host in sorted(forwards.items())]
    if firmware == "bios":
        if tftp is None:
            raise ValueError("BIOS PXE needs the TFTP directory (the export)")
        # SeaBIOS boots through the NIC's iPXE option ROM (QEMU's default romfile).
        options += [f"tftp={tftp}", f"bootfile={BIOS_BOOT_FILE}"]
        device = "virtio-net-pci,netdev=net0,bootindex=0"
        firmware_args: list[str] = []
    elif firmware == "uefi":
        options.append(f"bootfile={iso_url}")
        # OVMF's own virtio-net driver and HTTP boot (romfile= keeps iPXE out); PXE off, as on
        # a laptop set to HTTP boot: otherwise OVMF first tries PXE with the URL for a minute.
        device = "virtio-net-pci,netdev=net0,bootindex=0,romfile="
        firmware_args = [
            "-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=n",
            "-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n",
        ]  # fmt: skip
    else:
        raise ValueError(f"firmware must be bios or uefi, not {firmware}")
    return ["-netdev", ",".join(options), "-device", device, *firmware_args]


def smbios_serial(serial: str) -> list[str]:
    """The machine's DMI serial number (what engine.autoinstall's {serial} becomes)."""
    return ["-smbios", f"type=1,serial={serial}"]
