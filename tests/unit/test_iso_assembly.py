"""pycdlib assembly of a small tree: El Torito entries, hybrid MBR, SHA256SUMS, reproducible."""

from __future__ import annotations

import hashlib
import io
import os
import time
from pathlib import Path

import pycdlib
import pytest

from engine_installer.iso import hybrid_mbr, iso_image
from engine_installer.ondisk.medium import check_iso, has_hybrid_mbr, parse_sums
from tests.iso_helpers import EPOCH, fake_payload

BIOS = "boot/grub/bios.img"
EFI = "boot/grub/efi.img"


def small_tree(tmp_path: Path) -> dict[str, Path | bytes]:
    payload = fake_payload(tmp_path / "payload")
    efi = tmp_path / "efi.img"
    efi.write_bytes(b"\xeb\x3c\x90" + b"\0" * (64 * 1024 - 3))
    files: dict[str, Path | bytes] = {f"engine/{p.name}": p for p in sorted(payload.iterdir())}
    files |= {
        BIOS: b"\xfa" + bytes(4 * 2048 - 1),  # stands in for GRUB's cdboot + core
        EFI: efi,
        "boot/grub/grub.cfg": b"menuentry 'Install Engine' { true }\n",
        ".engine-id/0123abcd": b"id\n",
        "live/filesystem.squashfs": b"hsqs" + bytes(10000),
    }
    return files


def build(tmp_path: Path, name: str = "t.iso", files=None) -> tuple[Path, iso_image.Layout]:
    out = tmp_path / name
    layout = iso_image.assemble(
        out,
        files or small_tree(tmp_path),
        volume_id="ENGINE_5_0",
        bios_boot=BIOS,
        efi_boot=EFI,
        boot_catalog="boot/grub/boot.cat",
        epoch=EPOCH,
        disk_signature=b"\x01\x02\x03\x04",
    )
    return out, layout


def test_el_torito_has_bios_and_uefi_entries(tmp_path):
    out, layout = build(tmp_path)
    iso = pycdlib.PyCdlib()
    iso.open(str(out))
    try:
        catalog = iso.eltorito_boot_catalog
        assert catalog is not None
        assert catalog.validation_entry.platform_id == 0  # x86 BIOS
        assert catalog.initial_entry.boot_indicator == 0x88
        assert catalog.initial_entry.sector_count == 4
        assert catalog.initial_entry.get_rba() == layout.bios_lba
        assert len(catalog.sections) == 1
        section = catalog.sections[0]
        assert section.platform_id == 0xEF
        assert section.section_entries[0].get_rba() == layout.efi_lba
        assert iso.has_rock_ridge() and iso.has_joliet()
        assert iso.pvd.volume_identifier.rstrip() == b"ENGINE_5_0"
    finally:
        iso.close()


def test_boot_info_table_and_grub_blocklist_are_patched(tmp_path):
    out, layout = build(tmp_path)
    data = out.read_bytes()
    image = data[layout.bios_lba * 2048 : layout.bios_lba * 2048 + 4 * 2048]
    assert int.from_bytes(image[8:12], "little") == 16
    assert int.from_bytes(image[12:16], "little") == layout.bios_lba
    assert int.from_bytes(image[16:20], "little") == 4 * 2048
    words = sum(int.from_bytes(image[i : i + 4], "little") for i in range(64, len(image), 4))
    assert int.from_bytes(image[20:24], "little") == words & 0xFFFFFFFF
    assert int.from_bytes(image[2548:2556], "little") == layout.bios_lba * 4 + 5


def test_hybrid_mbr_is_valid(tmp_path):
    out, layout = build(tmp_path)
    mbr = out.read_bytes()[:512]
    size = out.stat().st_size
    assert size % (1024 * 1024) == 0  # padded to whole MiB, at least 300 KiB past the ISO
    assert mbr[510:] == b"\x55\xaa"
    assert has_hybrid_mbr(out)
    assert mbr[:0x1B0] == hybrid_mbr.BOOT_HYBRID.read_bytes()[:0x1B0]
    assert int.from_bytes(mbr[0x1B0:0x1B8], "little") == layout.bios_lba * 4 + 4
    assert mbr[0x1B8:0x1BC] == b"\x01\x02\x03\x04"
    first, second = mbr[0x1BE:0x1CE], mbr[0x1CE:0x1DE]
    assert first[0] == 0x80 and first[4] == 0x00
    assert int.from_bytes(first[8:12], "little") == 0
    assert int.from_bytes(first[12:16], "little") == size // 512
    assert second[0] == 0x00 and second[4] == 0xEF
    assert int.from_bytes(second[8:12], "little") == layout.efi_lba * 4
    assert int.from_bytes(second[12:16], "little") == layout.efi_size // 512
    assert mbr[0x1DE:0x1FE] == bytes(32)


def test_sha256sums_cover_every_file_and_check_passes(tmp_path):
    files = small_tree(tmp_path)
    out, layout = build(tmp_path, files=files)
    iso = pycdlib.PyCdlib()
    iso.open(str(out))
    buffer = io.BytesIO()
    iso.get_file_from_iso_fp(buffer, rr_path="/SHA256SUMS")
    iso.close()
    sums = parse_sums(buffer.getvalue(), "t.iso")
    assert sorted(sums) == sorted(files)  # every file; not SHA256SUMS, not the boot catalog
    payload_sha = hashlib.sha256(Path(files["engine/root.img"]).read_bytes()).hexdigest()
    assert sums["engine/root.img"] == payload_sha
    assert sums[BIOS] != hashlib.sha256(files[BIOS]).hexdigest()  # the patched bytes count
    check_iso(out)


def test_same_inputs_same_bytes_in_any_time_zone(tmp_path):
    first, _ = build(tmp_path, "a.iso")
    old_tz = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    try:
        time.sleep(1.1)
        second, _ = build(tmp_path, "b.iso")
    finally:
        if old_tz is None:
            os.environ.pop("TZ")
        else:
            os.environ["TZ"] = old_tz
        time.tzset()
    assert first.read_bytes() == second.read_bytes()
    assert time.time() != EPOCH  # pycdlib's clock was restored


def test_iso9660_names_are_level3_identifiers():
    assert iso_image.iso9660_name("manifest.json", False) == "MANIFEST.JSON;1"
    assert iso_image.iso9660_name("vmlinuz", False) == "VMLINUZ.;1"
    assert iso_image.iso9660_name(".engine-id", True) == "_ENGINE_ID"
    assert iso_image.iso9660_name("filesystem.squashfs", False) == "FILESYSTEM.SQUASHFS;1"


@pytest.mark.parametrize(
    ("lba", "expected"),
    [(0, bytes([0, 1, 0])), (2047, bytes([63, 32, 0])), (10**9, bytes([63, 0xE0, 0xFF]))],
)
def test_chs_addresses(lba, expected):
    assert hybrid_mbr.chs(lba) == expected
