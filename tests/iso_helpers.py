"""Shared by the ISO tests: a fake payload, the real ISO (built once, cached), QEMU media."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from engine_installer.ondisk.payload import write_manifest

EPOCH = 1_700_000_000


def fake_payload(directory: Path, version: str = "5.0", root_size: int = 64 * 1024) -> Path:
    """A small but valid payload (manifest + three artifacts) for assembly tests."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "root.img").write_bytes(bytes(range(256)) * (root_size // 256))
    (directory / "vmlinuz").write_bytes(b"kernel " * 100)
    (directory / "initrd.img").write_bytes(b"initrd " * 100)
    fields = {
        "product": "Engine",
        "version": version,
        "build": "7",
        "slot_size": max(1024 * 1024, 2 * root_size),
        "created": "2023-11-14T22:13:20Z",
    }
    artifacts = {"root": "root.img", "kernel": "vmlinuz", "initrd": "initrd.img"}
    write_manifest(directory, fields, artifacts)
    return directory


def build_real_iso(
    workdir: Path, version: str = "5.0", menu_default: str = "install", **build_args
) -> Path:
    """The full installer ISO from a sample payload; the live base comes from the cache.
    build_args go to build_iso (e.g. db_key=, db_cert= for an own-key medium)."""
    from engine_installer.iso.builder import build_iso
    from engine_installer.iso.sample_payload import build_sample_payload

    os.environ.setdefault("SOURCE_DATE_EPOCH", str(EPOCH))
    payload = workdir / f"payload-{version}"
    if not (payload / "manifest.json").exists():
        build_sample_payload(version=version, out=payload, epoch=EPOCH)
    iso = workdir / f"engine-{version}-{menu_default}.iso"
    build_iso(payload, iso, menu_default=menu_default, **build_args)
    return iso


def media_args(iso: Path, media: str, workdir: Path) -> list[str]:
    """QEMU arguments attaching the ISO as a DVD drive or as a USB stick (first boot device).

    The stick is a qcow2 overlay over the ISO, larger than it, as if written with dd to a
    4 GiB stick; writes go to the overlay, never to the ISO."""
    if media == "dvd":
        return ["-drive", f"if=none,id=dvd,format=raw,media=cdrom,readonly=on,file={iso}",
                "-device", "ide-cd,drive=dvd,bus=ide.5,bootindex=0"]  # fmt: skip
    if media == "usb":
        stick = workdir / "usb-stick.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(iso),
                        str(stick), "4G"], check=True)  # fmt: skip
        return ["-device", "qemu-xhci,id=xhci",
                "-drive", f"if=none,id=stick,format=qcow2,file={stick},cache=unsafe",
                "-device", "usb-storage,bus=xhci.0,drive=stick,bootindex=0"]  # fmt: skip
    raise ValueError(f"media must be dvd or usb, not {media}")


def corrupt_file_in_iso(iso: Path, rr_path: str, offset: int = 12345) -> None:
    """Flip one bit of one byte of a file inside the ISO (as a bad burn or download would)."""
    import pycdlib

    reader = pycdlib.PyCdlib()
    reader.open(str(iso))
    try:
        lba = reader.get_record(rr_path=rr_path).extent_location()
    finally:
        reader.close()
    with open(iso, "r+b") as handle:
        handle.seek(lba * 2048 + offset)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0x01]))


# 16-bit MBR code: write a line to COM1 (0x3F8), then halt. Proves "Boot from the first hard
# disk" chainloaded this disk under BIOS.
#   cld; xor ax,ax; mov ds,ax; mov si,msg; mov dx,0x3f8
#   next: lodsb; test al,al; jz done; out dx,al; jmp next
#   done: cli; hlt; jmp $-1
MBR_BANNER = b"DISK-MBR-BOOTED\r\n\0"
MBR_CODE = bytes.fromhex("fc 31c0 8ed8 be177c baf803 ac 84c0 7403 ee ebf8 fa f4 ebfd") + MBR_BANNER
EFI_BANNER = "DISK-EFI-BOOTED"


def make_chain_target_disk(path: Path, work: Path) -> None:
    """A 64 MiB GPT disk that shows it was booted: MBR code printing DISK-MBR-BOOTED on the
    serial port (BIOS), and an ESP whose EFI/BOOT/BOOTX64.EFI (a GRUB image) prints
    DISK-EFI-BOOTED (UEFI)."""
    from engine_installer.iso import bootloader

    work.mkdir(parents=True, exist_ok=True)
    config = f"""serial --unit=0 --speed=115200
terminal_output console serial
echo {EFI_BANNER}
sleep 600
"""
    memdisk = work / "memdisk.tar"
    bootloader.memdisk_tar(config, memdisk, EPOCH)
    efi = work / "BOOTX64.EFI"
    bootloader.grub_mkimage("x86_64-efi", efi, memdisk, ["echo", "serial", "terminal", "sleep"])
    esp = work / "esp.img"
    bootloader.make_fat_image(esp, {"EFI/BOOT/BOOTX64.EFI": efi}, "1234abcd", EPOCH)
    with open(path, "wb") as handle:
        handle.truncate(64 * 1024 * 1024)
    # (no -q: sgdisk 1.0.9 then quietly skips saving the table)
    sgdisk = ["sgdisk", "-o", "-n", "1:2048:+8M", "-t", "1:ef00", str(path)]
    subprocess.run(sgdisk, check=True, capture_output=True)
    with open(path, "r+b") as handle:
        handle.write(MBR_CODE)  # only the code area: the protective MBR entry stays
        handle.seek(2048 * 512)
        handle.write(esp.read_bytes())
