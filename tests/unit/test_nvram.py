"""The firmware boot entry: created first in BootOrder on the live system under UEFI, an old
entry for the same ESP replaced, and never anything outside the live system."""

from __future__ import annotations

import os
from pathlib import Path

from engine_installer.disks import nvram

LISTING = (
    "BootCurrent: 0001\nBootOrder: 0003,0001,0000\n"
    "Boot0000* UiApp\tFvVol(7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1)/FvFile(462caa21)\n"
    "Boot0001* UEFI QEMU DVD-ROM QM00005 \tPciRoot(0x0)/Pci(0x1f,0x2)/Sata(2,65535,0)\n"
    "Boot0003* Engine\tHD(2,GPT,0f0e0d0c-aaaa-bbbb-cccc-123456789abc,0x1000,0x96000)"
    "/File(\\EFI\\debian\\shimx64.efi)\n"
)


def fake_tools(tmp_path: Path, monkeypatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    (bin_dir / "efibootmgr").write_text(
        f'#!/bin/sh\necho "$@" >> {calls}\n[ "$1" = "-v" ] && cat {tmp_path / "listing"}\nexit 0\n'
    )
    (bin_dir / "blkid").write_text("#!/bin/sh\necho 0F0E0D0C-AAAA-BBBB-CCCC-123456789ABC\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    (tmp_path / "listing").write_text(LISTING)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return calls


def test_registers_shim_first_and_replaces_the_old_entry(tmp_path, monkeypatch):
    calls = fake_tools(tmp_path, monkeypatch)
    (tmp_path / "live").mkdir()
    (tmp_path / "efivars").mkdir()
    monkeypatch.setattr(nvram, "LIVE_SYSTEM", tmp_path / "live")
    monkeypatch.setattr(nvram, "EFIVARS", tmp_path / "efivars")
    said = nvram.register("/dev/nvme0n1", 2, "/dev/nvme0n1p2")
    assert "first in BootOrder" in said
    assert calls.read_text().splitlines() == [
        "-v",
        "--delete-bootnum --bootnum 0003",
        "--create --disk /dev/nvme0n1 --part 2 --label Engine --loader \\EFI\\debian\\shimx64.efi",
    ]


def test_outside_the_live_system_or_uefi_nothing_is_touched(tmp_path, monkeypatch):
    calls = fake_tools(tmp_path, monkeypatch)
    monkeypatch.setattr(nvram, "LIVE_SYSTEM", tmp_path / "not-live")
    (tmp_path / "efivars").mkdir()
    monkeypatch.setattr(nvram, "EFIVARS", tmp_path / "efivars")
    assert "left alone" in nvram.register("/dev/loop64", 2, "/dev/loop64p2")
    (tmp_path / "live").mkdir()
    monkeypatch.setattr(nvram, "LIVE_SYSTEM", tmp_path / "live")
    monkeypatch.setattr(nvram, "EFIVARS", tmp_path / "no-efivars")
    assert "not booted in UEFI mode" in nvram.register("/dev/sda", 2, "/dev/sda2")
    assert not calls.exists()
