"""The hybrid MBR that lets the same ISO file boot from a USB stick, under BIOS and UEFI.

Hand-written because no library does it for GRUB: pycdlib 1.22's add_isohybrid() takes only an
ISOLINUX boot file and writes a GPT whose entry-array CRC is wrong ("GPT array CRC wrong" in
xorriso). This writes what `xorriso -as mkisofs --grub2-mbr boot_hybrid.img` does, with an MBR
partition table in the style of Debian's hybrid ISOs:

  sector 0  GRUB's boot_hybrid.img (the first 440 bytes of code), with the 512-byte sector of
            the El Torito boot image's second sector (diskboot.img) at 0x1B0, i.e. LBA*4+4;
            BIOS runs it from a USB stick and it loads GRUB's core the hard-disk way.
  entry 1   bootable, type 0x00, sector 0 .. end of the ISO: covers the ISO9660 file system.
            Type 0 because UEFI (EDK2 PartitionValidMbr) skips type-0 entries, so it does not
            count as overlapping entry 2.
  entry 2   type 0xEF, the FAT image inside the ISO that also serves El Torito's UEFI entry:
            UEFI firmware boots EFI/BOOT/BOOTX64.EFI from it when the ISO is on a USB stick.
"""

from __future__ import annotations

from pathlib import Path

from engine_installer.base.errors import UserError

BOOT_HYBRID = Path("/usr/lib/grub/i386-pc/boot_hybrid.img")
GRUB2_MBR_LBA_OFFSET = 0x1B0
DISK_SIGNATURE_OFFSET = 0x1B8
TABLE_OFFSET = 0x1BE
CODE_BYTES = 0x1B0
ISO_SECTOR = 2048
HEADS, SECTORS = 64, 32  # the CHS geometry isohybrid and xorriso assume for USB sticks


def chs(lba: int) -> bytes:
    """The 3-byte CHS address of an LBA; past cylinder 1023 it saturates at the last CHS."""
    cylinder, rest = divmod(lba, HEADS * SECTORS)
    head, sector = divmod(rest, SECTORS)
    if cylinder > 1023:
        cylinder, head, sector = 1023, HEADS - 1, SECTORS - 1
    sector += 1
    return bytes([head, ((cylinder >> 2) & 0xC0) | sector, cylinder & 0xFF])


def partition_entry(bootable: bool, part_type: int, start: int, count: int) -> bytes:
    return (
        bytes([0x80 if bootable else 0x00])
        + chs(start)
        + bytes([part_type])
        + chs(start + count - 1)
        + start.to_bytes(4, "little")
        + count.to_bytes(4, "little")
    )


def build(
    *, iso_size: int, bios_lba: int, efi_lba: int, efi_size: int, disk_signature: bytes
) -> bytes:
    """The 512-byte MBR for an ISO of iso_size bytes (a multiple of 2048)."""
    try:
        code = BOOT_HYBRID.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{BOOT_HYBRID} is missing: install grub-pc-bin (`make setup`)") from None
    if len(code) != 512:
        raise UserError(f"{BOOT_HYBRID} is not a 512-byte MBR: reinstall grub-pc-bin")
    if len(disk_signature) != 4:
        raise ValueError("the MBR disk signature is 4 bytes")
    mbr = bytearray(512)
    mbr[:CODE_BYTES] = code[:CODE_BYTES]
    mbr[GRUB2_MBR_LBA_OFFSET : GRUB2_MBR_LBA_OFFSET + 8] = (bios_lba * 4 + 4).to_bytes(8, "little")
    mbr[DISK_SIGNATURE_OFFSET : DISK_SIGNATURE_OFFSET + 4] = disk_signature
    entries = partition_entry(True, 0x00, 0, iso_size // 512) + partition_entry(
        False, 0xEF, efi_lba * 4, -(-efi_size // 512)
    )
    mbr[TABLE_OFFSET : TABLE_OFFSET + len(entries)] = entries
    mbr[510:512] = b"\x55\xaa"
    return bytes(mbr)


def write(iso: Path, *, bios_lba: int, efi_lba: int, efi_size: int, disk_signature: bytes) -> None:
    """Put the MBR into sector 0 of the ISO's system area (pycdlib leaves it zero)."""
    size = iso.stat().st_size
    mbr = build(iso_size=size, bios_lba=bios_lba, efi_lba=efi_lba, efi_size=efi_size,
                disk_signature=disk_signature)  # fmt: skip
    with open(iso, "r+b") as handle:
        if any(handle.read(512)):
            raise UserError(f"{iso}: the system area is not empty; refusing to overwrite it")
        handle.seek(0)
        handle.write(mbr)
