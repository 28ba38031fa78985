"""GRUB for the installer medium: a BIOS El Torito image, a UEFI FAT image, one menu.

Both boot paths run a tiny config that finds *this* medium by its per-build ID file
(`search --file /.engine-id/<id>`), never by guessing: a laptop's own disk may carry another
Engine, or an older installer stick may be plugged in. The menu itself (boot/grub/grub.cfg on
the ISO) is shared by BIOS and UEFI.

- BIOS: a GRUB core built here with every module it needs and that config in a memdisk.
- UEFI: Debian's signed chain, so the medium boots with Secure Boot on (signed_chain.py):
  EFI/BOOT/BOOTX64.EFI is shim, beside it the signed GRUB (grubx64.efi, which shim starts) and
  the MOK manager (mmx64.efi). Debian's signed GRUB is one monolithic image that cannot load
  modules from disk under Secure Boot; its built-in config sources `<prefix>/grub.cfg`, the
  prefix being EFI/debian on the device it was loaded from, so the config above sits at
  EFI/debian/grub.cfg in the FAT image (USB: GRUB runs from that partition) and in the ISO9660
  tree (DVD: GRUB sees the whole CD as its device). Everything the menu uses (search, regexp,
  serial, linux, chain, iso9660, fat...) is built into that image.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from engine_installer.base.errors import UserError
from engine_installer.iso.signed_chain import SignedChain, host_chain

GRUB_PREFIX = "/boot/grub"
ID_DIR = ".engine-id"
# The El Torito UEFI image is a FAT file system. pycdlib 1.22 crashes writing one over
# 32 MiB; shim, the signed GRUB and the MOK manager take about 6 MiB.
EFI_IMAGE_BYTES = 8 * 1024 * 1024
# Where Debian's signed GRUB (grubx64.efi, prefix /EFI/debian) reads its config.
EFI_STUB_PATH = "EFI/debian/grub.cfg"
# The files of the removable-media path, as UEFI firmware and shim look for them.
EFI_BOOT_FILES = {"shim": "EFI/BOOT/BOOTX64.EFI", "grub": "EFI/BOOT/grubx64.efi",
                  "mm": "EFI/BOOT/mmx64.efi"}  # fmt: skip
MENU_TIMEOUT = 5
SERIAL = "ttyS0,115200n8"

_COMMON_MODULES = [
    "iso9660", "part_msdos", "part_gpt", "fat", "ext2",
    "search", "search_fs_file", "search_fs_uuid", "search_label",
    "normal", "configfile", "linux", "echo", "serial", "terminal", "test", "true",
    "chain", "sleep", "halt", "reboot", "ls", "cat", "regexp",
]  # fmt: skip
# The menu draws its Japanese entries with GRUB's Unicode font on a graphical terminal.
_FONT_MODULES = ["font", "gfxterm", "video", "video_fb", "bitmap", "bitmap_scale"]
BIOS_MODULES = ["biosdisk", "vbe", "vga", *_FONT_MODULES, *_COMMON_MODULES]
# GRUB's own Unicode font (grub-common), copied onto the medium for the menu's Japanese.
UNICODE_FONT = Path("/usr/share/grub/unicode.pf2")
FONT_PATH = f"{GRUB_PREFIX}/fonts/unicode.pf2"


@dataclass(frozen=True)
class BootImages:
    bios_image: Path  # El Torito no-emulation boot image (cdboot + GRUB core)
    efi_image: Path  # FAT image: EFI/BOOT/{BOOTX64.EFI (shim),grubx64.efi,mmx64.efi}, stub
    grub_cfg: str  # the menu, at /boot/grub/grub.cfg on the medium
    efi_stub: str  # the signed GRUB's config, at EFI_STUB_PATH in the FAT image and the ISO


def id_file_path(build_id: str) -> str:
    return f"/{ID_DIR}/{build_id}"


def early_config(build_id: str) -> str:
    """Find this medium, then load the shared menu: in the BIOS image's memdisk, and the
    signed UEFI GRUB's EFI/debian/grub.cfg."""
    return f"""\
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
set root=
search --no-floppy --file --set=root {id_file_path(build_id)}
if [ -n "$root" ]; then
  set prefix=($root){GRUB_PREFIX}
  configfile ($root){GRUB_PREFIX}/grub.cfg
fi
echo "Engine installer: cannot find its own medium (no {id_file_path(build_id)})."
echo "Reconnect the DVD or USB stick, or write it again; restarting in 30 s."
sleep 30
reboot
"""


# Memory settings for a short-lived installer (both cost page zeroing at every allocation,
# which dominates a boot under emulation): no transparent huge pages (2 MiB zeroed per fault
# for programs that run for seconds), and no zeroing of every page on allocation (a hardening
# default of Debian's kernel; the live system runs nothing but the installer, as root).
MEMORY_ARGS = "transparent_hugepage=never init_on_alloc=0"


# live-boot's network preconfiguration writes /etc/network/interfaces for ifupdown, which the
# live system does not have (a network boot's engine-netboot reads ipconfig's /run/net-*.conf),
# after one more udev trigger and settle of every device: a second of the boot under emulation.
LIVE_BOOT_ARGS = "boot=live nonetworking"


def kernel_args(extra: str = "") -> str:
    # live-boot finds /live/*.squashfs on the medium whose .disk/live-uuid-* matches the initrd;
    # the last console= is /dev/console; the installer starts on every console named here.
    args = f"{LIVE_BOOT_ARGS} quiet loglevel=3 {MEMORY_ARGS} console=tty0 console={SERIAL}"
    return f"{args} {extra}".strip()


MENU_ENTRIES = ("install", "check", "install-ja", "check-ja", "harddisk")
# Each installer entry's first words on the console (the QEMU harness times the menu by it).
LOADING_MESSAGE = "Loading the Engine installer"
# The Japanese entries: the guide's words for the installer's option, and the language
# named in English too, for a console that draws no Japanese (GRUB shows '?' there).
JA_INSTALL = "日本語: Engine をインストールする (Japanese)"
JA_CHECK = "日本語: メディアを検査してからインストールする (Japanese)"


def grub_menu(
    build_id: str, label: str, timeout: int = MENU_TIMEOUT, default: str = "install"
) -> str:
    """The boot menu, the same on BIOS and UEFI, on screen and on the first serial port."""
    return f"""\
# Engine installer boot menu ({label}); build {build_id}.
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
set default={default}
set timeout={timeout}
set timeout_style=menu
# The laptop's screen draws the menu with GRUB's Unicode font (for the Japanese entries);
# without the font or a graphics mode it stays in text mode. The serial port is unchanged.
if loadfont {FONT_PATH}; then
  set gfxmode=auto
  set gfxpayload=text
  if terminal_output gfxterm serial; then true; else terminal_output console serial; fi
fi

menuentry "Install Engine" --id install {{
  echo "{LOADING_MESSAGE} ({label})..."
  linux /live/vmlinuz {kernel_args()}
  initrd /live/initrd.img
}}

menuentry "Check the medium, then install" --id check {{
  echo "{LOADING_MESSAGE}; it checks the medium first..."
  linux /live/vmlinuz {kernel_args("engine.checkmedia=1")}
  initrd /live/initrd.img
}}

menuentry "{JA_INSTALL}" --id install-ja {{
  echo "{LOADING_MESSAGE} in Japanese ({label})..."
  linux /live/vmlinuz {kernel_args("engine.lang=ja")}
  initrd /live/initrd.img
}}

menuentry "{JA_CHECK}" --id check-ja {{
  echo "{LOADING_MESSAGE} in Japanese; it checks the medium first..."
  linux /live/vmlinuz {kernel_args("engine.checkmedia=1 engine.lang=ja")}
  initrd /live/initrd.img
}}

menuentry "Boot from the first hard disk" --id harddisk {{
  # The first disk that is not this medium (a USB stick is often hd0 itself).
  regexp --set=1:medium '^([^,]+)' "$root"
  for disk in hd0 hd1 hd2 hd3 hd4 hd5 hd6 hd7; do
    if [ "$disk" = "$medium" ]; then continue; fi
    if [ "$grub_platform" = "efi" ]; then
      for part in gpt2 gpt1 msdos1 msdos2; do
        if [ -f "($disk,$part)/EFI/BOOT/BOOTX64.EFI" ]; then
          chainloader "($disk,$part)/EFI/BOOT/BOOTX64.EFI"
          boot
        fi
      done
    else
      if chainloader "($disk)+1"; then
        set root="$disk"
        boot
      fi
    fi
  done
  echo "No hard disk with a boot loader was found."
  sleep 5
}}
"""


def _run(cmd: list[str], **kwargs: object) -> None:
    try:
        subprocess.run(cmd, check=True, capture_output=True, **kwargs)  # type: ignore[call-overload]
    except FileNotFoundError:
        raise UserError(f"{cmd[0]} is not installed: run `make setup` (it installs it)") from None
    except subprocess.CalledProcessError as err:
        detail = err.stderr.decode(errors="replace").strip().splitlines()
        raise UserError(
            f"{cmd[0]} failed: {detail[-1] if detail else err}; check the GRUB packages "
            "(grub-pc-bin, grub-efi-amd64-bin) with `make setup`"
        ) from None


def memdisk_tar(config: str, output: Path, epoch: int) -> None:
    """A tar holding boot/grub/grub.cfg for GRUB's memdisk, with fixed owner and times.

    GRUB runs a config given with `grub-mkimage -c` through its rescue parser (no `if`); a
    grub.cfg found through the prefix runs in normal mode with the full script language, as
    grub-mkstandalone does it."""
    data = config.encode()
    with tarfile.open(output, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name in ("boot", "boot/grub"):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, epoch
            tar.addfile(info)
        info = tarfile.TarInfo("boot/grub/grub.cfg")
        info.size, info.mode, info.mtime = len(data), 0o644, epoch
        tar.addfile(info, io.BytesIO(data))


def grub_mkimage(fmt: str, output: Path, memdisk: Path, modules: list[str]) -> None:
    _run(["grub-mkimage", "-O", fmt, "-o", str(output), "-p", f"(memdisk){GRUB_PREFIX}",
          "-m", str(memdisk), "memdisk", "tar", *modules])  # fmt: skip


def make_fat_image(output: Path, files: dict[str, Path], volume_id: str, epoch: int) -> None:
    """A FAT image holding `files` ({"EFI/BOOT/BOOTX64.EFI": source}), reproducibly.

    mkfs.fat --invariant fixes its own serial and times; mtools stamps directory entries with
    the current time unless SOURCE_DATE_EPOCH is set, so we set it for every call."""
    if output.exists():
        output.unlink()
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(epoch), MTOOLS_SKIP_CHECK="1")
    _run(["mkfs.fat", "--invariant", "-i", volume_id, "-n", "ENGINE_EFI", "-C", str(output),
          str(EFI_IMAGE_BYTES // 1024)], env=env)  # fmt: skip
    made: set[str] = set()
    for target in sorted(files):
        parts = target.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            directory = "/".join(parts[:depth])
            if directory not in made:
                _run(["mmd", "-i", str(output), f"::/{directory}"], env=env)
                made.add(directory)
        source = files[target]
        os.utime(source, (epoch, epoch))
        _run(["mcopy", "-m", "-i", str(output), str(source), f"::/{target}"], env=env)


def build_boot_images(
    work: Path,
    build_id: str,
    label: str,
    epoch: int,
    chain: SignedChain | None = None,
    default: str = "install",
) -> BootImages:
    """Make the BIOS GRUB image and the UEFI FAT image (with `chain`, default the build host's
    signed chain) in `work`."""
    chain = chain or host_chain()
    if shutil.which("grub-mkimage") is None:
        raise UserError("grub-mkimage is not installed: run `make setup` (grub2-common)")
    work.mkdir(parents=True, exist_ok=True)
    config = work / "memdisk.tar"
    stub = early_config(build_id)
    memdisk_tar(stub, config, epoch)
    bios = work / "bios.img"
    grub_mkimage("i386-pc-eltorito", bios, config, BIOS_MODULES)
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        files = {}
        for name, target in EFI_BOOT_FILES.items():
            # Copies: make_fat_image stamps its sources with the epoch.
            files[target] = Path(tmp) / Path(target).name
            shutil.copyfile(chain.files()[name], files[target])
        files[EFI_STUB_PATH] = Path(tmp) / "grub.cfg"
        files[EFI_STUB_PATH].write_text(stub)
        efi = work / "efi.img"
        volume_serial = hashlib.sha256(build_id.encode()).hexdigest()[:8]
        make_fat_image(efi, files, volume_serial, epoch)
    return BootImages(
        bios_image=bios,
        efi_image=efi,
        grub_cfg=grub_menu(build_id, label, default=default),
        efi_stub=stub,
    )
