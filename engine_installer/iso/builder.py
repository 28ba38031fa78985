"""engine-iso build: the installer ISO from the recipe in iso-build/ and an Engine payload.

    engine-iso build --payload DIR -o FILE [--dual-layer] [--cache DIR] [--rebuild-base]
                     [--db-key KEY --db-cert CERT]
                     [--sign-key KEY --sign-cert CERT [--trust-cert CERT]...]

Medium layout (project-wide, see docs/iso.md):
    /.engine-id/<build-id>       GRUB finds this medium by it (bootloader.py)
    /.disk/live-uuid-engine      live-boot finds this medium by it (same ID, in the initrd too)
    /boot/grub/{grub.cfg,bios.img,efi.img,boot.cat}
    /EFI/debian/grub.cfg         the signed UEFI GRUB's config on a DVD (also in efi.img)
    /live/{vmlinuz,initrd.img,filesystem.squashfs,installer.squashfs}
    /engine/                     the Engine payload (manifest.json and its artifacts)
    /SHA256SUMS                  every regular file except itself and the boot catalog
    /SHA256SUMS.p7s              signed media: a CMS signature of SHA256SUMS (iso/signing.py)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine_installer.base.errors import UserError
from engine_installer.base.i18n import _
from engine_installer.iso import app_layer, base, bootloader, iso_image, signed_chain, signing
from engine_installer.ondisk.payload import (
    MANIFEST_NAME,
    Manifest,
    find_payload_dir,
    load_manifest,
    sha256_file,
    verify_payload,
)

BUILD_FORMAT = "engine-iso-1"
CD_BYTES = 737_280_000  # an 80-minute "700 MB" CD-R: 360,000 sectors of 2048 bytes
DVD_BYTES = 4_700_372_992  # single-layer DVD±R "4.7 GB"
DVD_DL_BYTES = 8_543_666_176  # dual-layer DVD+R "8.5 GB"
BIOS_BOOT = "boot/grub/bios.img"
EFI_BOOT = "boot/grub/efi.img"
BOOT_CATALOG = "boot/grub/boot.cat"
LIVE_UUID = ".disk/live-uuid-engine"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--payload", type=Path, required=True, metavar="DIR",
                        help=_("Engine payload directory (holding manifest.json), e.g. from "
                               "`engine-iso sample-payload`"))  # fmt: skip
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="FILE",
                        help=_("the ISO to write"))  # fmt: skip
    parser.add_argument("--dual-layer", action="store_true",
                        help=_("allow an ISO larger than a single-layer DVD (4.7 GB)"))  # fmt: skip
    parser.add_argument("--cache", type=Path, metavar="DIR",
                        help=_("cache for the live system base and wheels (default: "
                               "${env} or ~/.cache/engine-installer)").format(
                                   env=base.CACHE_ENV))  # fmt: skip
    parser.add_argument("--menu-default", choices=bootloader.MENU_ENTRIES, default="install",
                        metavar="ENTRY",
                        help=_("boot menu entry chosen after the timeout: {entries} (default: "
                               "install; check = always check the medium first; -ja = in "
                               "Japanese)").format(
                                   entries=", ".join(bootloader.MENU_ENTRIES)))  # fmt: skip
    parser.add_argument("--rebuild-base", action="store_true",
                        help=_("rebuild the cached live system base (mmdebstrap)"))  # fmt: skip
    parser.add_argument("--db-key", type=Path, metavar="KEY",
                        help=_("also sign the UEFI boot chain with this db key (PEM, "
                               "unencrypted), for fleets that enroll their own keys"))  # fmt: skip
    parser.add_argument("--db-cert", type=Path, metavar="CERT",
                        help=_("the certificate of --db-key (PEM)"))  # fmt: skip
    parser.add_argument("--sign-key", type=Path, metavar="KEY",
                        help=_("sign the medium as an update kit with this private key (PEM, "
                               "unencrypted): a CMS signature of SHA256SUMS"))  # fmt: skip
    parser.add_argument("--sign-cert", type=Path, metavar="CERT",
                        help=_("the certificate of --sign-key (PEM); Engines installed from "
                               "this medium trust kits it signs"))  # fmt: skip
    parser.add_argument("--trust-cert", type=Path, metavar="CERT", action="append",
                        default=[], help=_("another certificate whose kits Engines installed "
                                           "from this medium accept (repeatable; with "
                                           "--sign-key)"))  # fmt: skip


def source_date_epoch() -> int:
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value is None:
        return int(time.time())
    try:
        return int(value)
    except ValueError:
        raise UserError(
            f"SOURCE_DATE_EPOCH={value!r} is not a number: set it to seconds since 1970"
        ) from None


def size_report(size: int, dual_layer: bool) -> str:
    """One line on where the ISO fits; UserError when it fits no DVD it was allowed on."""
    mb = size / 1_000_000
    limit, medium = (DVD_DL_BYTES, "a dual-layer DVD (8.5 GB)") if dual_layer else (
        DVD_BYTES, "a single-layer DVD (4.7 GB)")  # fmt: skip
    if size > limit:
        hint = "" if dual_layer else "; pass --dual-layer to allow a dual-layer DVD"
        raise UserError(f"the ISO would be {mb:.0f} MB, larger than {medium}: use a smaller "
                        f"payload{hint}")  # fmt: skip
    # The vendor's guide: burn the ISO to a DVD or write it to a USB stick; a CD is only a
    # size fact here (a CD-R holds 700 MB).
    return _("{mb} MB: burn it to a DVD or write it to a USB stick (engine-usb write); "
             "for size: a CD holds 700 MB, a single-layer DVD 4.7 GB").format(
                 mb=f"{mb:.0f}")  # fmt: skip


def volume_id(version: str) -> str:
    return re.sub(r"[^A-Z0-9_]", "_", f"ENGINE_{version}".upper())[:32]


def initrd_with_uuid(initrd: Path, build_id: str, work: Path, epoch: int) -> Path:
    """The cached initrd plus an appended cpio holding conf/uuid.conf = the build ID.

    live-boot then mounts only a medium whose /.disk/live-uuid-* holds the same ID, the same
    never-guess rule GRUB follows. The kernel unpacks concatenated initramfs archives in order;
    the zero padding keeps the appended one 4-byte aligned as init/initramfs.c requires."""
    tree = work / "initrd-extra"
    (tree / "conf").mkdir(parents=True, exist_ok=True)
    (tree / "conf" / "uuid.conf").write_text(build_id + "\n")
    for path in (tree / "conf" / "uuid.conf", tree / "conf"):
        path.chmod(0o644 if path.is_file() else 0o755)
        os.utime(path, (epoch, epoch))
    extra = subprocess.run(
        ["cpio", "--quiet", "-o", "-H", "newc", "--reproducible", "-R", "0:0"],
        input=b"conf\nconf/uuid.conf\n", cwd=tree, check=True, capture_output=True,
    ).stdout  # fmt: skip
    output = work / "initrd.img"
    with open(output, "wb") as out, open(initrd, "rb") as src:
        shutil.copyfileobj(src, out, 4 * 1024 * 1024)
        out.write(b"\0" * (-out.tell() % 512))
        out.write(extra)
    return output


def own_key_chain(
    chain: signed_chain.SignedChain, key: Path, cert: Path, work: Path
) -> signed_chain.SignedChain:
    """The chain with the files the firmware itself checks (shim, the MOK manager) also
    signed by the fleet's db key; shim checks GRUB and the kernel with Debian's CA as before."""
    work.mkdir(parents=True, exist_ok=True)
    shim = signed_chain.sign_with_db_key(chain.shim, work / "shimx64.efi", key, cert)
    mm = signed_chain.sign_with_db_key(chain.mm, work / "mmx64.efi", key, cert)
    return signed_chain.SignedChain(shim=shim, grub=chain.grub, mm=mm, versions=chain.versions)


def own_key_payload(
    manifest: Manifest, key: Path, cert: Path, work: Path
) -> dict[str, Path | bytes]:
    """ISO files replacing the payload's shim and MOK manager with copies also signed by the
    fleet's db key, and its manifest with their new hashes: the chain the installer puts on
    the laptop's ESP must boot on that fleet's laptops too."""
    if not manifest.boot_chain:
        return {}
    work.mkdir(parents=True, exist_ok=True)
    data = json.loads((manifest.directory / MANIFEST_NAME).read_text())
    files: dict[str, Path | bytes] = {}
    for name in ("shim", "mm"):
        artifact = manifest.artifacts[name]
        signed = signed_chain.sign_with_db_key(artifact.path, work / artifact.path.name, key, cert)
        entry = data["artifacts"][name]
        entry.update(sha256=sha256_file(signed), size=signed.stat().st_size)
        files[f"engine/{entry['path']}"] = signed
    files[f"engine/{MANIFEST_NAME}"] = (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()
    return files


def payload_files(payload_dir: Path) -> dict[str, Path]:
    files = {}
    for path in sorted(payload_dir.rglob("*")):
        if path.is_file() and not path.is_symlink():
            files[f"engine/{path.relative_to(payload_dir).as_posix()}"] = path
    return files


def build_iso(
    payload: Path,
    output: Path,
    *,
    cache: Path | None = None,
    dual_layer: bool = False,
    rebuild_base: bool = False,
    menu_default: str = "install",
    db_key: Path | None = None,
    db_cert: Path | None = None,
    sign_key: Path | None = None,
    sign_cert: Path | None = None,
    trust_certs: list[Path] | None = None,
    say=print,
) -> iso_image.Layout:
    started = time.monotonic()
    if (db_key is None) != (db_cert is None):
        raise UserError("--db-key and --db-cert go together: give both, or neither")
    if db_key is not None and db_cert is not None:
        signed_chain.check_db_key(db_key, db_cert)
    if (sign_key is None) != (sign_cert is None):
        raise UserError("--sign-key and --sign-cert go together: give both, or neither")
    if trust_certs and sign_key is None:
        raise UserError("--trust-cert needs --sign-key and --sign-cert: a kit must be signed")
    if sign_key is not None and sign_cert is not None:
        signing.check_sign_key(sign_key, sign_cert)
    payload_dir = find_payload_dir(payload)
    manifest = load_manifest(payload_dir)
    verify_payload(manifest)  # an ISO never carries a payload that fails its own manifest
    output = output.resolve()
    if output.is_dir():
        raise UserError(f"{output} is a directory: give -o a file name such as engine.iso")
    if not output.parent.is_dir():
        raise UserError(f"{output.parent} does not exist: create it or pick another -o")
    epoch = source_date_epoch()
    chain = signed_chain.host_chain()
    cache = (cache or base.default_cache_dir()).resolve()
    base_layer = base.build_base(cache, rebuild=rebuild_base)
    settings = base.read_settings(base.recipe_dir())
    with tempfile.TemporaryDirectory(prefix=".engine-iso-", dir=output.parent) as tmp:
        work = Path(tmp)
        if db_key is not None and db_cert is not None:
            chain = own_key_chain(chain, db_key, db_cert, work / "own-key")
        app = app_layer.build_app_layer(work, cache, settings, epoch)
        files: dict[str, Path | bytes] = {
            "live/vmlinuz": base_layer.kernel,
            "live/filesystem.squashfs": base_layer.squashfs,
            "live/installer.squashfs": app,
            **payload_files(payload_dir),
        }
        if db_key is not None and db_cert is not None:
            files |= own_key_payload(manifest, db_key, db_cert, work / "own-key-payload")
        sign = None
        if sign_key is not None and sign_cert is not None:
            prefix = f"{signing.TRUST_ON_MEDIUM}/"
            own = {rel.removeprefix(prefix) for rel in files if rel.startswith(prefix)}
            files |= signing.trust_files([sign_cert, *(trust_certs or [])], own)
            sign = signing.signer(sign_key, sign_cert)
        # The build ID is derived from every input, so the same inputs give the same ISO.
        digest = hashlib.sha256(f"{BUILD_FORMAT}\n{epoch}\n{menu_default}\n".encode())
        for rel in sorted(files):
            digest.update(f"{rel} {iso_image.sha256_source(files[rel])}\n".encode())
        for name, path in sorted(chain.files().items()):
            digest.update(f"efi {name} {iso_image.sha256_source(path)}\n".encode())
        digest.update(base_layer.initrd.read_bytes())
        build_id = digest.hexdigest()[:32]
        label = manifest.plain_label()  # GRUB's menu text, the same in every language
        files["live/initrd.img"] = initrd_with_uuid(base_layer.initrd, build_id, work, epoch)
        boot = bootloader.build_boot_images(
            work / "boot", build_id, label, epoch, chain, default=menu_default
        )
        files[BIOS_BOOT] = boot.bios_image.read_bytes()
        files[EFI_BOOT] = boot.efi_image
        files["boot/grub/grub.cfg"] = boot.grub_cfg.encode()
        files[bootloader.EFI_STUB_PATH] = boot.efi_stub.encode()
        if bootloader.UNICODE_FONT.is_file():  # the menu's Japanese entries (else '?' marks)
            files[bootloader.FONT_PATH.lstrip("/")] = bootloader.UNICODE_FONT
        files[bootloader.id_file_path(build_id).lstrip("/")] = (
            f"Engine installer medium\n{label}\nbuild-id {build_id}\n".encode()
        )
        files[LIVE_UUID] = f"{build_id}\n".encode()
        verdict: list[str] = []
        partial = work / "engine.iso"
        layout = iso_image.assemble(
            partial,
            files,
            volume_id=volume_id(manifest.version),
            bios_boot=BIOS_BOOT,
            efi_boot=EFI_BOOT,
            boot_catalog=BOOT_CATALOG,
            epoch=epoch,
            disk_signature=bytes.fromhex(build_id[:8]),
            size_check=lambda size: verdict.append(size_report(size, dual_layer)),
            sign=sign,
        )
        os.utime(partial, (epoch, epoch))
        partial.replace(output)
    say(f"{output}: {label}, build {build_id}")
    keys = "Microsoft UEFI CA and the --db-key" if db_key else "Microsoft UEFI CA"
    versions = ", ".join(f"{name} {version}" for name, version in sorted(chain.versions.items()))
    say(f"UEFI boot chain signed for Secure Boot ({keys}): {versions}")
    say(f"size {output.stat().st_size:,} bytes, {verdict[0]}")
    if sign is not None:
        say(f"signed with {sign_cert} (SHA256SUMS.p7s): an update kit")
    say(f"built in {time.monotonic() - started:.1f} s (live system base {base_layer.key})")
    return layout


def run(args: argparse.Namespace) -> int:
    build_iso(
        args.payload,
        args.output,
        cache=args.cache,
        dual_layer=args.dual_layer,
        rebuild_base=args.rebuild_base,
        menu_default=args.menu_default,
        db_key=args.db_key,
        db_cert=args.db_cert,
        sign_key=args.sign_key,
        sign_cert=args.sign_cert,
        trust_certs=args.trust_cert,
    )
    return 0


if __name__ == "__main__":  # pragma: no cover - `engine-iso build` is the entry point
    from engine_installer.iso.cli import main

    sys.exit(main(["build", *sys.argv[1:]]))
