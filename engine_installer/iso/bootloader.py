"""GRUB for the installer medium: a BIOS El Torito image, a UEFI FAT image, one menu.

Both GRUB images carry every module they need and a tiny config (in a memdisk) that finds
*this* medium by its per-build ID file (`search --file /.engine-id/<id>`), never by guessing: a
laptop's own disk may carry another Engine, or an older installer stick may be plugged in.
The menu itself (boot/grub/grub.cfg on the ISO) is shared by BIOS and UEFI.
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

GRUB_PREFIX = "/boot/grub"
ID_DIR = ".engine-id"
# The El Torito UEFI image is a FAT file system. pycdlib 1.22 crashes writing one over
# 32 MiB; GRUB with its modules needs a few MiB.
EFI_IMAGE_BYTES = 4 * 1024 * 1024
MENU_TIMEOUT = 5
SERIAL = "ttyS0,115200n8"

_COMMON_MODULES = [
    "iso9660", "part_msdos", "part_gpt", "fat", "ext2",
    "search", "search_fs_file", "search_fs_uuid", "search_label",
    "normal", "configfile", "linux", "echo", "serial", "terminal", "test", "true",
    "chain", "sleep", "halt", "reboot", "ls", "cat", "regexp",
]  # fmt: skip
BIOS_MODULES = ["biosdisk", *_COMMON_MODULES]
EFI_MODULES = ["efi_gop", "efi_uga", "video", "video_fb", *_COMMON_MODULES]


@dataclass(frozen=True)
class BootImages:
    bios_image: Path  # El Torito no-emulation boot image (cdboot + GRUB core)
    efi_image: Path  # FAT image holding EFI/BOOT/BOOTX64.EFI
    grub_cfg: str  # the menu, at /boot/grub/grub.cfg on the medium


def id_file_path(build_id: str) -> str:
    return f"/{ID_DIR}/{build_id}"


def early_config(build_id: str) -> str:
    """Embedded in both GRUB images (memdisk): find this medium, then load the shared menu."""
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


def kernel_args(extra: str = "") -> str:
    # live-boot finds /live/*.squashfs on the medium whose .disk/live-uuid-* matches the initrd;
    # the last console= is /dev/console; the installer starts on every console named here.
    args = f"boot=live quiet loglevel=3 {MEMORY_ARGS} console=tty0 console={SERIAL}"
    return f"{args} {extra}".strip()


MENU_ENTRIES = ("install", "check", "harddisk")
# Each installer entry's first words on the console (the QEMU harness times the menu by it).
LOADING_MESSAGE = "Loading the Engine installer"


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
    work: Path, build_id: str, label: str, epoch: int, default: str = "install"
) -> BootImages:
    """Make both GRUB images in `work` for this build."""
    if shutil.which("grub-mkimage") is None:
        raise UserError("grub-mkimage is not installed: run `make setup` (grub2-common)")
    work.mkdir(parents=True, exist_ok=True)
    config = work / "memdisk.tar"
    memdisk_tar(early_config(build_id), config, epoch)
    bios = work / "bios.img"
    grub_mkimage("i386-pc-eltorito", bios, config, BIOS_MODULES)
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        efi_binary = Path(tmp) / "BOOTX64.EFI"
        grub_mkimage("x86_64-efi", efi_binary, config, EFI_MODULES)
        efi = work / "efi.img"
        volume_serial = hashlib.sha256(build_id.encode()).hexdigest()[:8]
        make_fat_image(efi, {"EFI/BOOT/BOOTX64.EFI": efi_binary}, volume_serial, epoch)
    return BootImages(
        bios_image=bios, efi_image=efi, grub_cfg=grub_menu(build_id, label, default=default)
    )
