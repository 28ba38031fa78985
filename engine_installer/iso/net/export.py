"""engine-iso netboot ISO --out DIR: the directory a TFTP and an HTTP server serve as they are.

    DIR/boot/grub/i386-pc/core.0 + modules   BIOS PXE: GRUB's PXE image (grub-mknetdir), TFTP
    DIR/boot/grub/grub.cfg                    its menu, over TFTP
    DIR/uefi/{shimx64,grubx64,mmx64}.efi      UEFI PXE (Secure Boot too): shim, Debian's signed
                                              network GRUB and the MOK manager, over TFTP
    DIR/grub/grub.cfg                         the signed network GRUB's menu, over TFTP
    DIR/live/vmlinuz, DIR/live/initrd.img     the ISO's kernel and initrd: BIOS GRUB reads them
                                              over HTTP, the signed GRUB over TFTP (it has no http)
    DIR/engine.iso                            the ISO itself, over HTTP: UEFI HTTP boot loads it
                                              into a RAM disk; on PXE live-boot fetches it (fetch=)
    DIR/netboot-args.txt                      engine.* arguments a UEFI HTTP boot takes over
    DIR/netboot.json, DIR/dhcp.txt            what was exported; the DHCP settings it needs

The live system (the ISO) always comes over HTTP; TFTP carries boot loaders and, for the signed
GRUB only, kernel and initrd. The ISO is checked (every file against its SHA256SUMS) before
anything is exported, so a damaged ISO never reaches a fleet.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pycdlib
from pycdlib.pycdlibexception import PyCdlibException

from engine_installer.base.errors import UserError
from engine_installer.iso import bootloader
from engine_installer.iso.net import dhcp
from engine_installer.iso.signed_chain import host_chain
from engine_installer.netboot.names import (
    ARGS_NAME,
    AUTOINSTALL_ARG,
    BIOS_BOOT_FILE,
    DHCP_NAME,
    GRUB_SUBDIR,
    INFO_NAME,
    INITRD,
    ISO_NAME,
    KERNEL,
    NET_GRUB_CFG,
    NETBOOT_ARG,
    REPORT_ARG,
    UEFI_BOOT_FILE,
    UEFI_FILES,
)
from engine_installer.ondisk.medium import check_iso, manifest_from_iso

GRUB_PC_DIR = Path("/usr/lib/grub/i386-pc")
MENU_DEFAULTS = ("install", "autoinstall")
# GRUB's own variable for the TFTP server it came from: the HTTP server when --url is not given.
GRUB_SERVER = "${net_default_server}"


@dataclass(frozen=True)
class BaseURL:
    """Where DIR is served over HTTP: http://host[:port]/path/ (path ends in /)."""

    host: str  # a name, an address, or GRUB_SERVER (worked out by GRUB at boot)
    port: int | None
    path: str

    @property
    def authority(self) -> str:
        return f"{self.host}:{self.port}" if self.port else self.host

    @property
    def url(self) -> str:
        return f"http://{self.authority}{self.path}"

    @property
    def grub_device(self) -> str:
        """GRUB's name for the HTTP server: (http,host[:port])."""
        return f"(http,{self.authority})"

    def join(self, rel: str) -> str:
        return self.url + rel

    @property
    def known(self) -> bool:
        return self.host != GRUB_SERVER


def parse_http_url(text: str, what: str) -> str:
    """An http:// URL with a host, as given; UserError (one line) otherwise."""
    parts = urlsplit(text)
    if parts.scheme != "http" or not parts.hostname:
        raise UserError(
            f"{what} {text!r} is not an http:// URL: give one like http://192.168.1.5/engine/ "
            "(firmware, GRUB and the live system speak plain HTTP)"
        )
    if re.search(r"[\s'\"\\]", text):
        raise UserError(f"{what} {text!r} contains spaces or quotes: percent-encode them")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise UserError(f"{what} {text!r} has a bad port: use http://host:8080/...") from None
    return text


def base_url(text: str | None, port: int | None = None) -> BaseURL:
    """--url (or, without it, the TFTP server on `port`) as a BaseURL."""
    if text is None:
        return BaseURL(GRUB_SERVER, port if port not in (None, 80) else None, "/")
    parse_http_url(text, "--url")
    parts = urlsplit(text)
    if parts.query or parts.fragment:
        raise UserError(f"--url {text!r} has a query or fragment: give the directory URL only")
    path = parts.path or "/"
    if not path.endswith("/"):
        path += "/"
    return BaseURL(parts.hostname or "", parts.port if parts.port != 80 else None, path)


@dataclass(frozen=True)
class SiteArgs:
    """The fleet settings an export hands to the installer: opt-in unattended installs."""

    autoinstall: str | None = None  # answer-file URL, may hold {serial} / {mac}
    report: str | None = None  # where unattended results are POSTed

    def arguments(self, unattended: bool) -> list[str]:
        args = []
        if unattended and self.autoinstall:
            args.append(f"{AUTOINSTALL_ARG}={self.autoinstall}")
        if self.report:
            args.append(f"{REPORT_ARG}={self.report}")
        return args


@dataclass(frozen=True)
class ExportInfo:
    """netboot.json: what an export holds (the lab server and people read it)."""

    label: str
    build_id: str
    iso_name: str
    iso_size: int
    url: str  # the HTTP base URL, or one with ${net_default_server} when not given
    menu_default: str
    autoinstall: str | None
    report: str | None
    bios_boot_file: str = BIOS_BOOT_FILE
    uefi_boot_file: str = UEFI_BOOT_FILE


def pxe_menu(
    build_id: str,
    label: str,
    url: BaseURL,
    site: SiteArgs,
    default: str = "install",
    signed_grub: bool = False,
) -> str:
    """A PXE boot menu, read by GRUB over TFTP; live-boot fetches the ISO over HTTP. BIOS: GRUB's
    own PXE image loads kernel and initrd over HTTP. UEFI (signed_grub): Debian's signed network
    GRUB has no http module (and Secure Boot forbids loading one), so it loads them over TFTP
    from the server it came from. Arguments from the site are single-quoted so GRUB leaves
    {serial} alone."""
    source = "(tftp)/" if signed_grub else f"{url.grub_device}{url.path}"
    over = "TFTP (kernel, initrd) and HTTP (the ISO)" if signed_grub else "HTTP"

    def entry(entry_id: str, title: str, unattended: bool) -> str:
        site_args = " ".join(f"'{arg}'" for arg in site.arguments(unattended))
        args = bootloader.kernel_args(
            f"fetch={url.join(ISO_NAME)} {NETBOOT_ARG}={url.url} BOOTIF=01-${{net_default_mac}} "
            + site_args
        )
        return f"""
menuentry "{title}" --id {entry_id} {{
  echo "Loading the Engine installer ({label}) over {over} from {url.url} ..."
  linux {source}{KERNEL} {args}
  initrd {source}{INITRD}
}}
"""

    menu = f"""\
# Engine installer network boot menu ({label}); build {build_id}.
# Written by engine-iso netboot; GRUB reads it over TFTP.
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
set default={default}
set timeout={bootloader.MENU_TIMEOUT}
set timeout_style=menu
"""
    if not signed_grub:
        menu += "insmod http\n"
    menu += entry("install", "Install Engine (network boot)", unattended=False)
    if site.autoinstall:
        menu += entry("autoinstall", "Install Engine unattended (answers from the server)", True)
    return menu


def _say_default(message: str) -> None:
    print(message, flush=True)


def _iso_build_id(iso: Path) -> str:
    reader = pycdlib.PyCdlib()
    try:
        reader.open(str(iso))
        names = [
            child.rock_ridge.name().decode()
            for child in reader.list_children(rr_path=f"/{bootloader.ID_DIR}")
            if child.rock_ridge is not None and not child.is_dot() and not child.is_dotdot()
        ]
    except PyCdlibException as err:
        raise UserError(f"{iso} has no /{bootloader.ID_DIR}/ ({err}): rebuild it with "
                        "engine-iso build") from None  # fmt: skip
    finally:
        reader.close()
    if len(names) != 1:
        raise UserError(f"{iso} has {len(names)} build IDs in /{bootloader.ID_DIR}/: rebuild it")
    return names[0]


def _extract(iso: Path, files: dict[str, Path]) -> None:
    """Copy files out of the ISO ({"/live/vmlinuz": target}), each via a temporary name."""
    reader = pycdlib.PyCdlib()
    reader.open(str(iso))
    try:
        for rr_path, target in files.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.partial")
            reader.get_file_from_iso(str(partial), rr_path=rr_path)
            partial.replace(target)
    finally:
        reader.close()


def _publish_iso(iso: Path, target: Path) -> None:
    """The ISO at target: a hard link when on the same file system (instant), else a copy."""
    if target.exists() and os.path.samefile(iso, target):
        return
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        os.link(iso, partial)
    except OSError:
        shutil.copyfile(iso, partial)
    partial.replace(target)


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    shutil.copyfile(source, partial)
    partial.replace(target)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    partial.replace(path)


def _grub_mknetdir(out: Path) -> None:
    if shutil.which("grub-mknetdir") is None or not GRUB_PC_DIR.is_dir():
        raise UserError("grub-mknetdir or GRUB's BIOS modules are missing: run `make setup` "
                        "(grub2-common, grub-pc-bin)")  # fmt: skip
    cmd = ["grub-mknetdir", f"--net-directory={out}", f"--subdir={GRUB_SUBDIR}",
           "-d", str(GRUB_PC_DIR)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        raise UserError(f"grub-mknetdir failed ({detail}): check the GRUB packages (make setup)")


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file: name a directory for the export")
    if out.is_dir() and any(out.iterdir()) and not (out / INFO_NAME).is_file():
        raise UserError(
            f"--out {out} is not empty and holds no earlier export ({INFO_NAME}): "
            "name a new or empty directory"
        )
    if not out.parent.is_dir():
        raise UserError(f"{out.parent} does not exist: create it or choose another --out")


def export(
    iso: Path,
    out: Path,
    *,
    url: str | None = None,
    port: int | None = None,
    site: SiteArgs | None = None,
    menu_default: str = "install",
    say: Callable[[str], None] = _say_default,
) -> ExportInfo:
    """Check the ISO, then write the export; returns what netboot.json records."""
    iso = Path(iso)
    out = Path(out).resolve()
    site = site or SiteArgs()
    if not iso.is_file():
        raise UserError(f"{iso} is not a file: give the installer ISO made by engine-iso build")
    if menu_default not in MENU_DEFAULTS:
        raise UserError(f"--menu-default {menu_default}: choose install or autoinstall")
    if menu_default == "autoinstall" and not site.autoinstall:
        raise UserError("--menu-default autoinstall needs --autoinstall URL")
    for what, value in (("--autoinstall", site.autoinstall), ("--report", site.report)):
        if value is not None:
            parse_http_url(value, what)
    base = base_url(url, port)
    _check_out_dir(out)
    chain = host_chain(network=True)
    say(f"checking {iso.name}: every file against its SHA256SUMS ...")
    check_iso(iso)
    build_id = _iso_build_id(iso)
    manifest = manifest_from_iso(iso)
    label = "{} {} (build {})".format(
        manifest.get("product", "Engine"), manifest.get("version", "?"), manifest.get("build", "?")
    )
    out.mkdir(exist_ok=True)
    _grub_mknetdir(out)
    _extract(iso, {"/" + KERNEL: out / KERNEL, "/" + INITRD: out / INITRD})
    _publish_iso(iso, out / ISO_NAME)
    _write(out / GRUB_SUBDIR / "grub.cfg", pxe_menu(build_id, label, base, site, menu_default))
    # UEFI PXE: shim (the DHCP boot file) starts grubx64.efi from its own TFTP directory: the
    # signed network GRUB, whose prefix is /grub on the same server.
    for name, source in chain.files().items():
        _copy(source, out / UEFI_FILES[name])
    _write(out / NET_GRUB_CFG, pxe_menu(build_id, label, base, site, menu_default, True))
    # A UEFI HTTP boot runs the ISO's own menu; it takes the default entry's settings from here.
    args = site.arguments(unattended=menu_default == "autoinstall")
    _write(out / ARGS_NAME, "".join(f"{arg}\n" for arg in args))
    info = ExportInfo(
        label=label,
        build_id=build_id,
        iso_name=ISO_NAME,
        iso_size=iso.stat().st_size,
        url=base.url,
        menu_default=menu_default,
        autoinstall=site.autoinstall,
        report=site.report,
    )
    _write(out / INFO_NAME, json.dumps(asdict(info), indent=2) + "\n")
    settings = dhcp.settings(base)
    _write(out / DHCP_NAME, settings)
    say(f"{out}: {label} for network boot (build {build_id})")
    say(
        f"serve {out} over TFTP (GRUB, shim; kernel and initrd for UEFI PXE) and over HTTP at "
        f"{base.url}"
    )
    if args:
        say(f"UEFI HTTP boots take over: {' '.join(args)}")
    say("")
    say(settings)
    return info


def load_info(directory: Path) -> ExportInfo:
    """netboot.json of an export; UserError when the directory is not one."""
    path = Path(directory) / INFO_NAME
    try:
        data = json.loads(path.read_text())
        return ExportInfo(**data)
    except FileNotFoundError:
        raise UserError(
            f"{directory} is not a network boot export (no {INFO_NAME}): make one with "
            "engine-iso netboot ISO --out DIR"
        ) from None
    except (json.JSONDecodeError, TypeError) as err:
        raise UserError(f"{path} is damaged ({err}): export the ISO again") from None
