"""Independent tools agree the assembled ISO is well formed, and `engine-iso check` catches a
one-byte corruption of the payload. Uses the real GRUB images and a small fake payload (the
full live system is exercised by tests/e2e/test_iso_boot.py); a few seconds."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pycdlib
import pytest

from engine_installer.iso import bootloader, builder, iso_image, signed_chain
from tests.iso_helpers import EPOCH, fake_payload

BUILD_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def iso(tmp_path_factory) -> Path:
    for tool in ("xorriso", "sfdisk", "isoinfo", "grub-mkimage", "mkfs.fat", "mcopy"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (make setup)")
    work = tmp_path_factory.mktemp("isotools")
    payload = fake_payload(work / "payload", root_size=2 * 1024 * 1024)
    chain = signed_chain.host_chain()
    boot = bootloader.build_boot_images(
        work / "boot", BUILD_ID, "Engine 5.0 (build 7)", EPOCH, chain
    )
    files = {f"engine/{p.name}": p for p in sorted(payload.iterdir())}
    files |= {
        builder.BIOS_BOOT: boot.bios_image.read_bytes(),
        builder.EFI_BOOT: boot.efi_image,
        "boot/grub/grub.cfg": boot.grub_cfg.encode(),
        bootloader.EFI_STUB_PATH: boot.efi_stub.encode(),
        bootloader.id_file_path(BUILD_ID).lstrip("/"): b"Engine installer medium\n",
    }
    out = work / "engine.iso"
    iso_image.assemble(out, files, volume_id="ENGINE_5_0", bios_boot=builder.BIOS_BOOT,
                       efi_boot=builder.EFI_BOOT, boot_catalog=builder.BOOT_CATALOG,
                       epoch=EPOCH, disk_signature=b"\xab\xcd\xef\x01")  # fmt: skip
    return out


def run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def test_xorriso_reports_both_boot_entries_and_the_grub_mbr_without_errors(iso):
    result = run("xorriso", "-indev", str(iso), "-report_el_torito", "plain",
                 "-report_system_area", "plain")  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = result.stdout + result.stderr
    for bad in ("FAILURE", "SORRY", "WARNING", "CRC wrong", "error"):
        assert bad not in report, report
    assert "El Torito boot img :   1  BIOS  y   none" in report
    assert "El Torito boot img :   2  UEFI  y   none" in report
    assert "boot-info-table grub2-boot-info" in report  # xorriso recognises our patches
    assert "MBR grub2-mbr" in report
    assert "MBR partition path :   2  /boot/grub/efi.img" in report


def test_sfdisk_shows_the_hybrid_table(iso):
    result = run("sfdisk", "-l", str(iso))
    assert result.returncode == 0, result.stderr
    assert "Disklabel type: dos" in result.stdout
    assert "Disk identifier: 0x01efcdab" in result.stdout
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith(str(iso))]
    assert rows[0][1] == "*" and rows[0][2] == "0" and rows[0][-2:] == ["0", "Empty"]
    assert rows[1][-4:-2] == ["4M", "ef"] or "ef" in rows[1]


def test_isoinfo_reads_it(iso):
    result = run("isoinfo", "-d", "-i", str(iso))
    assert result.returncode == 0, result.stderr
    assert "Volume id: ENGINE_5_0" in result.stdout
    assert "Rock Ridge signatures" in result.stdout and "Joliet" in result.stdout
    assert "El Torito VD version 1 found" in result.stdout
    listing = run("isoinfo", "-R", "-f", "-i", str(iso)).stdout.split()
    assert "/engine/manifest.json" in listing and "/SHA256SUMS" in listing


def engine_iso(*args: str) -> subprocess.CompletedProcess:
    code = "import sys; from engine_installer.iso.cli import main; sys.exit(main(sys.argv[1:]))"
    return run(sys.executable, "-c", code, *args)


def test_engine_iso_check_passes_the_good_iso(iso):
    result = engine_iso("check", str(iso))
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_one_flipped_payload_byte_is_caught_and_named(iso, tmp_path):
    bad = tmp_path / "bad.iso"
    shutil.copyfile(iso, bad)
    reader = pycdlib.PyCdlib()
    reader.open(str(bad))
    lba = reader.get_record(rr_path="/engine/root.img").extent_location()
    reader.close()
    with open(bad, "r+b") as handle:
        handle.seek(lba * 2048 + 12345)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0x01]))
    result = engine_iso("check", str(bad))
    assert result.returncode != 0
    assert "engine/root.img" in result.stderr and "Traceback" not in result.stderr


def test_uefi_boot_files_are_debians_signed_chain(iso, tmp_path):
    """The FAT image (El Torito UEFI entry and the USB partition) holds shim as BOOTX64.EFI,
    the signed GRUB and MOK manager beside it, and the stub that finds this medium; a DVD's
    GRUB reads the same stub from the ISO9660 tree."""
    reader = pycdlib.PyCdlib()
    reader.open(str(iso))
    try:
        offset = reader.get_record(rr_path="/boot/grub/efi.img").extent_location() * 2048
        stub = io.BytesIO()
        reader.get_file_from_iso_fp(stub, rr_path="/" + bootloader.EFI_STUB_PATH)
    finally:
        reader.close()
    chain = signed_chain.host_chain()
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    for name, target in bootloader.EFI_BOOT_FILES.items():
        out = tmp_path / name
        subprocess.run(["mcopy", "-n", "-i", f"{iso}@@{offset}", f"::/{target}", str(out)],
                       check=True, env=env)  # fmt: skip
        assert out.read_bytes() == chain.files()[name].read_bytes(), target
    listing = run("sbverify", "--list", str(tmp_path / "shim")).stdout
    assert "Microsoft Corporation UEFI CA 2011" in listing
    assert "Debian Secure Boot CA" in run("sbverify", "--list", str(tmp_path / "grub")).stdout
    mtype = ["mtype", "-i", f"{iso}@@{offset}", "::/" + bootloader.EFI_STUB_PATH]
    fat_stub = subprocess.run(mtype, capture_output=True, text=True, check=True, env=env).stdout
    assert fat_stub == stub.getvalue().decode() == bootloader.early_config(BUILD_ID)
    assert f"--set=root /.engine-id/{BUILD_ID}" in fat_stub
