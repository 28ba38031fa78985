"""Update kits for the tests: signing keys, and small Engine ISOs signed as `engine-iso build
--sign-key` signs them (the same assembly and signing code), without the live system (which
only a boot needs; e2e cells use the full ISO)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from engine_installer.iso import bootloader, builder, iso_image, signing
from tests.iso_helpers import EPOCH

BUILD_ID = "0123456789abcdef0123456789abcdef"


def make_key(directory: Path, name: str, subject: str = "") -> tuple[Path, Path]:
    """An RSA key and its self-signed certificate (key.pem, cert.pem) under directory/name."""
    folder = directory / name
    folder.mkdir(parents=True, exist_ok=True)
    key, cert = folder / "key.pem", folder / f"{name}.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "3650", "-subj", f"/CN={subject or name}"],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, cert


def make_kit(
    payload: Path,
    out: Path,
    key: Path | None = None,
    cert: Path | None = None,
    trust: list[Path] | None = None,
    boot_dir: Path | None = None,
) -> Path:
    """An Engine ISO of payload (a payload directory), signed with key/cert when given (the
    certificates in trust, default cert, go on it as engine/trust/*.pem)."""
    boot = bootloader.build_boot_images(
        boot_dir or out.parent / f"{out.stem}-boot", BUILD_ID, "Engine", EPOCH
    )
    files: dict[str, Path | bytes] = {
        f"engine/{p.relative_to(payload).as_posix()}": p
        for p in sorted(payload.rglob("*"))
        if p.is_file()
    }
    files |= {
        builder.BIOS_BOOT: boot.bios_image.read_bytes(),
        builder.EFI_BOOT: boot.efi_image,
        "boot/grub/grub.cfg": boot.grub_cfg.encode(),
    }
    sign = None
    if key is not None and cert is not None:
        files |= signing.trust_files(trust if trust is not None else [cert], set())
        sign = signing.signer(key, cert)
    iso_image.assemble(
        out,
        files,
        volume_id="ENGINE_KIT",
        bios_boot=builder.BIOS_BOOT,
        efi_boot=builder.EFI_BOOT,
        boot_catalog=builder.BOOT_CATALOG,
        epoch=EPOCH,
        disk_signature=b"\x4b\x49\x54\x21",
        sign=sign,
    )
    return out
