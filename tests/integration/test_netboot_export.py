"""`engine-iso netboot` as a user runs it, on a small ISO with the real GRUB images: the export
directory (GRUB's PXE image from grub-mknetdir, shim and Debian's signed network GRUB, the ISO's
kernel and initrd, the ISO, the DHCP settings), the lab server over real TFTP and HTTP, and bad
input. A few seconds; the full boot paths are tests/e2e/test_netboot_qemu.py."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import tftpy

from engine_installer.iso import bootloader, builder, iso_image
from engine_installer.iso.signed_chain import MOK_MANAGER, NET_GRUB, SHIM
from tests.iso_helpers import EPOCH, corrupt_file_in_iso, fake_payload

BUILD_ID = "0123456789abcdef0123456789abcdef"
ENGINE_ISO = [str(Path(sys.executable).parent / "engine-iso")]  # the console script


@pytest.fixture(scope="module")
def iso(tmp_path_factory) -> Path:
    for tool in ("grub-mknetdir", "grub-mkimage", "mkfs.fat", "mcopy"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (make setup)")
    work = tmp_path_factory.mktemp("netexport")
    payload = fake_payload(work / "payload", root_size=1024 * 1024)
    boot = bootloader.build_boot_images(work / "boot", BUILD_ID, "Engine 5.0 (build 7)", EPOCH)
    files = {f"engine/{p.name}": p for p in sorted(payload.iterdir())}
    files |= {
        builder.BIOS_BOOT: boot.bios_image.read_bytes(),
        builder.EFI_BOOT: boot.efi_image,
        "boot/grub/grub.cfg": boot.grub_cfg.encode(),
        bootloader.id_file_path(BUILD_ID).lstrip("/"): b"Engine installer medium\n",
        "live/vmlinuz": b"kernel bytes " * 1000,
        "live/initrd.img": b"initrd bytes " * 3000,
    }
    out = work / "engine.iso"
    iso_image.assemble(out, files, volume_id="ENGINE_5_0", bios_boot=builder.BIOS_BOOT,
                       efi_boot=builder.EFI_BOOT, boot_catalog=builder.BOOT_CATALOG,
                       epoch=EPOCH, disk_signature=b"\xab\xcd\xef\x01")  # fmt: skip
    return out


def engine_iso(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*ENGINE_ISO, *args], capture_output=True, text=True, check=False)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_export_layout_and_dhcp_settings(iso, tmp_path):
    out = tmp_path / "srv"
    proc = engine_iso("netboot", str(iso), "--out", str(out), "--url", "http://10.9.8.7:8080/e/",
                      "--autoinstall", "http://10.9.8.7:8080/e/answers/{serial}.toml",
                      "--report", "http://10.9.8.7:8080/e/reports/")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert 'filename "http://10.9.8.7:8080/e/engine.iso";' in proc.stdout  # printed for ISC
    assert "dhcp-boot=tag:bios,boot/grub/i386-pc/core.0,,10.9.8.7" in proc.stdout
    assert (out / "dhcp.txt").read_text() in proc.stdout
    core = out / "boot/grub/i386-pc/core.0"
    assert core.stat().st_size > 20_000 and (out / "boot/grub/i386-pc/http.mod").is_file()
    menu = (out / "boot/grub/grub.cfg").read_text()
    assert f"build {BUILD_ID}" in menu
    assert "linux (http,10.9.8.7:8080)/e/live/vmlinuz boot=live" in menu
    assert (out / "live/vmlinuz").read_bytes() == b"kernel bytes " * 1000
    # UEFI PXE: shim (the DHCP boot file) starts grubx64.efi next to it, Debian's signed
    # network GRUB, which reads grub/grub.cfg and loads kernel and initrd over TFTP.
    assert 'filename "uefi/shimx64.efi";' in proc.stdout
    assert "dhcp-boot=tag:efi64,uefi/shimx64.efi,,10.9.8.7" in proc.stdout
    assert (out / "uefi/shimx64.efi").read_bytes() == SHIM.read_bytes()
    assert (out / "uefi/grubx64.efi").read_bytes() == NET_GRUB.read_bytes()
    assert (out / "uefi/mmx64.efi").read_bytes() == MOK_MANAGER.read_bytes()
    uefi_menu = (out / "grub/grub.cfg").read_text()
    assert f"build {BUILD_ID}" in uefi_menu and "insmod" not in uefi_menu
    assert "linux (tftp)/live/vmlinuz boot=live" in uefi_menu
    assert "fetch=http://10.9.8.7:8080/e/engine.iso" in uefi_menu
    assert (out / "live/initrd.img").read_bytes() == b"initrd bytes " * 3000
    assert (out / "engine.iso").read_bytes() == iso.read_bytes()
    assert (
        out / "netboot-args.txt"
    ).read_text() == "engine.report=http://10.9.8.7:8080/e/reports/\n"
    info = json.loads((out / "netboot.json").read_text())
    assert info["build_id"] == BUILD_ID and info["label"] == "Engine 5.0 (build 7)"
    # Exporting again into the same directory replaces it.
    again = engine_iso("netboot", str(iso), "--out", str(out), "--menu-default", "autoinstall",
                       "--autoinstall", "http://h/a.toml")  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert (out / "netboot-args.txt").read_text() == "engine.autoinstall=http://h/a.toml\n"


def test_lab_server_serves_the_export_over_tftp_and_http(iso, tmp_path):
    out = tmp_path / "srv"
    assert engine_iso("netboot", str(iso), "--out", str(out)).returncode == 0
    http_port, tftp_port = free_port(), free_port(socket.SOCK_DGRAM)
    server = subprocess.Popen(
        [*ENGINE_ISO, "netboot", "--serve", "--bind", "127.0.0.1", "--port", str(http_port),
         "--tftp-port", str(tftp_port), str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{http_port}"
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"{base}/live/vmlinuz", timeout=5) as response:
                    assert response.read() == b"kernel bytes " * 1000
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail(f"the lab server did not answer: {server.stderr.read()}")
        client = tftpy.TftpClient("127.0.0.1", tftp_port, options={"blksize": 1428})
        for name in ("boot/grub/i386-pc/core.0", "uefi/shimx64.efi", "live/initrd.img"):
            client.download(name, str(tmp_path / "got"))
            assert (tmp_path / "got").read_bytes() == (out / name).read_bytes(), name
    finally:
        server.send_signal(signal.SIGINT)
        stdout, _ = server.communicate(timeout=30)
    assert server.returncode == 0
    assert f"HTTP on 127.0.0.1:{http_port}, TFTP on port {tftp_port}" in stdout
    assert "stopped" in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{iso}"], "no --out: give the export directory"),
        (["{tmp}"], "is a directory: serve an export with --serve"),
        (["--serve", "{tmp}"], "is not a network boot export (no netboot.json)"),
        (["{iso}", "--out", "{tmp}/x", "--url", "https://h/"], "is not an http:// URL"),
        (["{iso}", "--out", "{tmp}/x", "--menu-default", "autoinstall"], "needs --autoinstall"),
        (["{tmp}/missing.iso", "--out", "{tmp}/x"], "is not a file"),
        (["--serve", "--port", "70000", "{tmp}"], "--port 70000 is not a port"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(iso, tmp_path, args, message):
    args = [a.format(iso=iso, tmp=tmp_path) for a in args]
    proc = engine_iso("netboot", *args)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert not (tmp_path / "x").exists()


def test_a_damaged_iso_is_never_exported(iso, tmp_path):
    bad = tmp_path / "bad.iso"
    shutil.copyfile(iso, bad)
    corrupt_file_in_iso(bad, "/engine/root.img", offset=100)
    proc = engine_iso("netboot", str(bad), "--out", str(tmp_path / "out"))
    assert proc.returncode != 0
    assert "engine/root.img" in proc.stderr and "does not match" in proc.stderr
    assert not (tmp_path / "out").exists()
    assert os.listdir(tmp_path) == ["bad.iso"]
