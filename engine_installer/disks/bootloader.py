"""GRUB for BIOS and UEFI on an Engine disk, sharing one grub.cfg and grubenv on the ESP.

- BIOS: a core image embedded in the 1 MiB engine-bios partition (GPT type BIOS boot) plus
  the boot code in the protective MBR, written by grub-bios-setup.
- UEFI, payload with a signed chain: Debian's shim and signed GRUB in EFI/debian/ and again
  at the removable-media path EFI/BOOT/ (BOOTX64.EFI = shim), which firmware boots from any
  disk without an NVRAM entry, so Engine boots with Secure Boot on (efi_chain.py). The signed
  GRUB's stub config hands over to the shared grub.cfg, whose modules are all built into it.
- UEFI, payload without one (Engine before Secure Boot support): a GRUB image built here at
  EFI/BOOT/BOOTX64.EFI, which boots with Secure Boot off only.

Why grub-mkimage + grub-bios-setup instead of grub-install: grub-install probes the mounted
ESP to find its device and filesystem UUID, so it cannot write into a staging directory (the
disk backend uses one where the kernel has no vfat, copying it to the FAT with mtools) and it
would bake in a search for that UUID. Instead both images get a prefix relative to the device
they were loaded from: the UEFI image's own partition (prefix /boot/grub) and, for BIOS, the
boot drive's partition 2 (prefix (,gpt2)/boot/grub). So each Engine disk's GRUB reads its own
ESP even when a laptop carries two Engine disks, and grub.cfg takes the slots from that disk.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from engine_installer.base.errors import UserError
from engine_installer.disks.efi_chain import stage_chain
from engine_installer.disks.grub_config import render_grub_cfg
from engine_installer.machine.ownership import SCRATCH_PREFIX, own_prefix
from engine_installer.ondisk.layout import EFI_REMOVABLE_PATH, GRUB_DIR
from engine_installer.ondisk.payload import Manifest

GRUB_LIB = Path("/usr/lib/grub")
GRUB_BIOS_SETUP = ("grub-bios-setup", str(GRUB_LIB / "i386-pc" / "grub-bios-setup"))
ESP_PARTITION_NUMBER = 2
# Built into the images so grub.cfg runs even if the module directories are damaged; the
# directories are copied as well so any other command still loads on demand.
COMMON_MODULES = (
    "part_gpt part_msdos fat ext2 normal configfile linux echo test regexp probe loadenv "
    "serial terminal search search_fs_uuid sleep reboot halt"
).split()
PLATFORM_MODULES = {"i386-pc": ["biosdisk"], "x86_64-efi": ["efi_gop"]}


def _run(cmd: list[str], what: str) -> None:
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise UserError(
            f"{cmd[0]} is not installed: install grub-pc-bin, grub-efi-amd64-bin, grub2-common"
        ) from None
    except subprocess.CalledProcessError as err:
        lines = [line for line in (err.stderr or "").splitlines() if line.strip()]
        detail = lines[-1].strip() if lines else f"exit status {err.returncode}"
        raise UserError(f"{what} failed: {detail}") from None


def _platform_dir(platform: str) -> Path:
    directory = GRUB_LIB / platform
    if not (directory / "kernel.img").is_file():
        package = "grub-pc-bin" if platform == "i386-pc" else "grub-efi-amd64-bin"
        raise UserError(f"GRUB for {platform} is missing ({directory}): install {package}")
    return directory


def _copy_modules(platform: str, grub_dir: Path) -> None:
    source = _platform_dir(platform)
    target = grub_dir / platform
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.iterdir()):
        if path.suffix in (".mod", ".lst"):
            shutil.copyfile(path, target / path.name)


def _mkimage(platform: str, output: Path, prefix: str) -> None:
    modules = COMMON_MODULES + PLATFORM_MODULES[platform]
    cmd = ["grub-mkimage", "-O", platform, "-d", str(_platform_dir(platform))]
    cmd += ["-o", str(output), "-p", prefix, *modules]
    _run(cmd, f"building the GRUB {platform} image")


def install_bios_boot(disk: str) -> None:
    """Embed a BIOS GRUB in disk's BIOS boot partition and MBR (prefix: its own ESP)."""
    setup = shutil.which(GRUB_BIOS_SETUP[0]) or GRUB_BIOS_SETUP[1]
    scratch = tempfile.TemporaryDirectory(prefix=own_prefix(SCRATCH_PREFIX))
    with scratch as tmp, _scratch_dir(Path(tmp)) as work:
        shutil.copyfile(_platform_dir("i386-pc") / "boot.img", work / "boot.img")
        _mkimage("i386-pc", work / "core.img", f"(,gpt{ESP_PARTITION_NUMBER})/{GRUB_DIR}")
        # An empty device map: grub-bios-setup must not guess from /boot/grub/device.map.
        (work / "device.map").write_text("")
        cmd = [setup, "--skip-fs-probe", "-d", str(work), "-m", str(work / "device.map"), disk]
        _run(cmd, f"installing GRUB for BIOS on {disk}")


@contextlib.contextmanager
def _scratch_dir(tmp: Path) -> Iterator[Path]:
    """A directory on a small loop-mounted ext2 image, for grub-bios-setup's -d.

    Why: grub-bios-setup insists on opening the block device under its -d directory (it
    "guesses the root device" from it), and neither a live system's tmpfs nor a sandbox's
    root disk allows that. A throw-away 4 MiB ext2 on a loop device (auto-detached on
    unmount) always does.
    """
    image = tmp / "scratch.img"
    mount_point = tmp / "mnt"
    mount_point.mkdir()
    with open(image, "wb") as handle:
        handle.truncate(4 * 1024 * 1024)
    _run(["mkfs.ext2", "-q", "-F", str(image)], "making GRUB's scratch filesystem")
    _run(
        ["mount", "-o", "loop", str(image), str(mount_point)], "mounting GRUB's scratch filesystem"
    )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], capture_output=True, check=False)


def populate_esp(esp_dir: Path, manifest: Manifest | None = None) -> None:
    """Write GRUB's ESP files (UEFI boot files, modules, grub.cfg) into esp_dir.

    esp_dir is the mounted ESP or a staging directory later copied onto it. The UEFI boot
    files are the manifest's signed chain when it has one, else a GRUB image built here.
    """
    esp_dir = Path(esp_dir)
    if not esp_dir.is_dir():
        raise UserError(f"ESP directory {esp_dir} does not exist: mount or stage the ESP first")
    grub_dir = esp_dir / GRUB_DIR
    grub_dir.mkdir(parents=True, exist_ok=True)
    signed = manifest is not None and bool(manifest.boot_chain)
    # The signed GRUB has its modules built in (and may load none from disk).
    for platform in ("i386-pc",) if signed else ("i386-pc", "x86_64-efi"):
        _copy_modules(platform, grub_dir)
    if signed:
        assert manifest is not None
        stage_chain(esp_dir, manifest)
    else:
        efi_image = esp_dir / EFI_REMOVABLE_PATH
        efi_image.parent.mkdir(parents=True, exist_ok=True)
        _mkimage("x86_64-efi", efi_image, f"/{GRUB_DIR}")
    cfg = grub_dir / "grub.cfg"
    tmp = cfg.with_name("grub.cfg.new")
    tmp.write_text(render_grub_cfg())
    tmp.replace(cfg)


def install_bootloader(disk: str, esp_mount: Path, manifest: Manifest | None = None) -> None:
    """GRUB for BIOS and UEFI on disk plus grub.cfg, with disk's ESP at esp_mount; for UEFI
    the manifest's signed chain when it has one.

    esp_mount may be the mounted ESP or a staging directory copied onto the ESP afterwards.
    Writes neither the boot environment nor the per-slot boot options: the runner writes
    those afterwards (disks/esp.py).
    """
    populate_esp(esp_mount, manifest)
    install_bios_boot(disk)
