"""Debian's signed UEFI boot chain on the build host: shim, its MOK manager, signed GRUB.

shim (signed by Microsoft's UEFI CA) is what the firmware starts; it carries Debian's CA and
checks GRUB and the kernel against it, so a laptop with Secure Boot on and only Microsoft's keys
enrolled boots Debian's signed GRUB and linux-image-amd64 kernel. The medium and the sample
Engine payload take these files from the host's packages (shim-signed, shim-helpers-amd64-signed,
grub-efi-amd64-signed; `make setup` installs them).

`sign_with_db_key` adds a signature made with a fleet's own db key (sbsign) for fleets that
enroll their own keys instead of Microsoft's.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from engine_installer.base.errors import UserError

SHIM = Path("/usr/lib/shim/shimx64.efi.signed")
MOK_MANAGER = Path("/usr/lib/shim/mmx64.efi.signed")
GRUB = Path("/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed")
# Debian's signed GRUB for network boot (UEFI PXE): efinet + tftp built in, prefix /grub on
# the server it was loaded from; shim fetches it as grubx64.efi from shim's own TFTP directory.
# No http module: under Secure Boot GRUB reads files over TFTP only.
NET_GRUB = Path("/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed")
# Chain component → the Debian package whose version identifies it (mmx64 ships with shim).
PACKAGES = {"shim": "shim-signed", "grub": "grub-efi-amd64-signed"}


@dataclass(frozen=True)
class SignedChain:
    shim: Path
    grub: Path
    mm: Path
    versions: dict[str, str]  # {"shim": <shim-signed version>, "grub": <grub-…-signed version>}

    def files(self) -> dict[str, Path]:
        return {"shim": self.shim, "grub": self.grub, "mm": self.mm}


def package_version(package: str) -> str:
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        raise UserError(f"{package} is not installed: run `make setup` (it installs it)")
    return proc.stdout.strip()


def host_chain(network: bool = False) -> SignedChain:
    """The signed chain installed on this machine (with network=True, the network GRUB for
    UEFI PXE instead of the disk/CD one); UserError naming the missing package."""
    grub = NET_GRUB if network else GRUB
    for path, package in ((SHIM, "shim-signed"), (MOK_MANAGER, "shim-helpers-amd64-signed"),
                          (grub, "grub-efi-amd64-signed")):  # fmt: skip
        if not path.is_file():
            raise UserError(f"{path} is missing: install {package} (`make setup` does)")
    versions = {name: package_version(package) for name, package in PACKAGES.items()}
    return SignedChain(shim=SHIM, grub=grub, mm=MOK_MANAGER, versions=versions)


def check_db_key(key: Path, cert: Path) -> None:
    """Refuse unusable --db-key/--db-cert before anything is built."""
    for what, path in (("--db-key", key), ("--db-cert", cert)):
        if not Path(path).is_file():
            raise UserError(f"{what} {path} does not exist: give the fleet's db key and cert")
    if shutil.which("sbsign") is None:
        raise UserError("sbsign is not installed: install sbsigntool (`make setup` does)")
    proc = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-noout"], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise UserError(f"--db-cert {cert} is not a PEM certificate: give the db certificate")


def sign_with_db_key(source: Path, output: Path, key: Path, cert: Path) -> Path:
    """source plus a signature by key/cert (its earlier signatures stay) written to output."""
    proc = subprocess.run(
        ["sbsign", "--key", str(key), "--cert", str(cert), "--output", str(output), str(source)],
        # No terminal to ask on: an encrypted key fails here instead of prompting for ever.
        capture_output=True, text=True, stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    if proc.returncode != 0 or not output.is_file():
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        detail = lines[-1] if lines else f"exit status {proc.returncode}"
        raise UserError(
            f"sbsign could not sign {source.name} with --db-key ({detail}): give an "
            "unencrypted PEM private key that matches --db-cert"
        )
    return output


def builtin_modules(grub_image: Path) -> set[str]:
    """Names of the GRUB modules built into an EFI GRUB image (its "mods" PE section).

    Hand-written because no tool lists them: the section holds GRUB's own module_info header
    followed by (type, size) objects, type 0 being one module's ELF file whose ".modname"
    section names it (grub-core/kern/efi/init.c and include/grub/kernel.h describe it)."""
    data = Path(grub_image).read_bytes()
    try:
        pe = struct.unpack_from("<I", data, 0x3C)[0]
        (count,) = struct.unpack_from("<H", data, pe + 6)
        (optional,) = struct.unpack_from("<H", data, pe + 20)
        mods = b""
        for i in range(count):
            name, _vsize, _vaddr, size, offset = struct.unpack_from(
                "<8sIIII", data, pe + 24 + optional + 40 * i)  # fmt: skip
            if name.rstrip(b"\0") == b"mods":
                mods = data[offset : offset + size]
        magic, _pad, first, total = struct.unpack_from("<4sIQQ", mods, 0)
        if magic != b"mimg":
            raise ValueError("no module header")
        names, pos = set(), first
        while pos < total:
            kind, size = struct.unpack_from("<II", mods, pos)
            if kind == 0:
                names.add(_elf_modname(mods[pos + 8 : pos + size]))
            pos += size
    except (struct.error, ValueError) as err:
        raise UserError(f"{grub_image} is not a GRUB EFI image ({err}): reinstall GRUB") from None
    return names - {""}


def _elf_modname(elf: bytes) -> str:
    shoff = struct.unpack_from("<Q", elf, 0x28)[0]
    entsize, count, strndx = struct.unpack_from("<HHH", elf, 0x3A)
    strtab = struct.unpack_from("<Q", elf, shoff + strndx * entsize + 0x18)[0]
    for i in range(count):
        header = shoff + i * entsize
        name_at = strtab + struct.unpack_from("<I", elf, header)[0]
        if elf[name_at : elf.index(b"\0", name_at)] == b".modname":
            at = struct.unpack_from("<Q", elf, header + 0x18)[0]
            return elf[at : elf.index(b"\0", at)].decode()
    return ""
