"""Build policy and the live-system recipe: size messages, boot menu, units, cache keys."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine_installer.base.errors import UserError
from engine_installer.iso import base, bootloader, builder, live_check
from engine_installer.ondisk.medium import check_medium_dir
from tests.iso_helpers import fake_payload

GENERATOR = (
    base.recipe_dir() / "overlay/usr/lib/systemd/system-generators/engine-installer-generator"
)


def test_size_report_follows_the_guide_dvd_or_usb_stick_and_a_cd_only_as_a_size():
    for size in (300_000_000, 800_000_000):
        message = builder.size_report(size, dual_layer=False)
        assert message.startswith(f"{size // 1_000_000} MB: burn it to a DVD or write it to a USB")
        assert "fits on a CD" not in message and "a CD holds 700 MB" in message


def test_size_over_single_layer_dvd_is_refused_unless_dual_layer():
    with pytest.raises(UserError, match=r"single-layer DVD.*--dual-layer"):
        builder.size_report(5_000_000_000, dual_layer=False)
    assert "burn it to a DVD" in builder.size_report(5_000_000_000, dual_layer=True)
    with pytest.raises(UserError, match="dual-layer DVD"):
        builder.size_report(9_000_000_000, dual_layer=True)


def test_volume_id_is_iso9660_safe():
    assert builder.volume_id("5.0") == "ENGINE_5_0"
    assert builder.volume_id("10.2-beta+x") == "ENGINE_10_2_BETA_X"


def test_bad_source_date_epoch_is_a_user_error(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(UserError, match="SOURCE_DATE_EPOCH"):
        builder.source_date_epoch()


def test_build_refuses_a_payload_that_fails_its_manifest(tmp_path):
    payload = fake_payload(tmp_path / "p")
    with open(payload / "root.img", "r+b") as handle:
        handle.write(b"X")
    with pytest.raises(UserError, match="root.img"):
        builder.build_iso(payload, tmp_path / "x.iso", cache=tmp_path / "cache")
    assert not (tmp_path / "x.iso").exists()


def test_menu_entries_same_for_bios_and_uefi_with_japanese_ones():
    menu = bootloader.grub_menu("abc123", "Engine 5.0 (build 1)")
    titles = [line.split('"')[1] for line in menu.splitlines() if line.startswith("menuentry")]
    assert titles == [
        "Install Engine",
        "Check the medium, then install",
        "日本語: Engine をインストールする (Japanese)",
        "日本語: メディアを検査してからインストールする (Japanese)",
        "Boot from the first hard disk",
    ]
    assert "set default=install" in menu and f"set timeout={bootloader.MENU_TIMEOUT}" in menu
    assert "serial --unit=0" in menu and "terminal_output console serial" in menu
    check = menu.split("Check the medium")[1].split("menuentry")[0]
    assert "engine.checkmedia=1" in check and "engine.lang" not in check
    assert "engine.checkmedia" not in menu.split("Check the medium")[0]
    assert "console=ttyS0,115200n8" in menu
    japanese = menu.split("--id install-ja")[1].split("menuentry")[0]
    assert "engine.lang=ja" in japanese and "engine.checkmedia" not in japanese
    check_ja = menu.split("--id check-ja")[1].split("menuentry")[0]
    assert "engine.lang=ja" in check_ja and "engine.checkmedia=1" in check_ja
    # The laptop's screen draws the Japanese with GRUB's Unicode font; serial stays as it is.
    assert f"loadfont {bootloader.FONT_PATH}" in menu and "terminal_output gfxterm serial" in menu


def test_early_config_finds_the_medium_by_its_build_id_only():
    early = bootloader.early_config("abc123")
    assert "search --no-floppy --file --set=root /.engine-id/abc123" in early
    assert early.index("set root=") < early.index("search")  # no fallback to a guess


def run_generator(tmp_path: Path, cmdline: str) -> tuple[set[str], set[str]]:
    (tmp_path / "cmdline").write_text(cmdline + "\n")
    normal, early = tmp_path / "normal", tmp_path / "early"
    env = dict(os.environ, ENGINE_CMDLINE=str(tmp_path / "cmdline"))
    subprocess.run(["sh", str(GENERATOR), str(normal), str(early), str(tmp_path / "late")],
                   check=True, env=env)  # fmt: skip
    started = {p.name for p in (normal / "multi-user.target.wants").iterdir()}
    masked = {p.name for p in early.iterdir() if os.readlink(p) == "/dev/null"}
    return started, masked


def test_generator_starts_one_installer_per_console(tmp_path):
    started, masked = run_generator(
        tmp_path, "boot=live quiet console=tty0 console=ttyS0,115200n8 console=ttyS1"
    )
    assert started == {
        "engine-installer@tty1.service",
        "engine-installer-serial@ttyS0.service",
        "engine-installer-serial@ttyS1.service",
    }
    assert masked == {"getty@tty1.service", "serial-getty@ttyS0.service",
                      "serial-getty@ttyS1.service"}  # fmt: skip


def test_generator_serves_tty1_without_console_args(tmp_path):
    started, _ = run_generator(tmp_path, "boot=live quiet")
    assert started == {"engine-installer@tty1.service"}


def test_units_run_the_installer_without_login():
    units = base.recipe_dir() / "overlay/etc/systemd/system"
    serial = (units / "engine-installer-serial@.service").read_text()
    assert "ExecStart=/usr/local/bin/engine-installer --ascii" in serial
    assert "TTYRows=24" in serial and "TTYColumns=80" in serial
    vt = (units / "engine-installer@.service").read_text()
    assert "ExecStart=/usr/lib/engine-installer/tty1\n" in vt
    # tty1: inside fbterm with the CJK font when there is a frame buffer, else the installer.
    tty1 = (base.recipe_dir() / "overlay/usr/lib/engine-installer/tty1").read_text()
    assert (
        'fbterm --font-names="VL Gothic"' in tty1 and "-- /usr/local/bin/engine-installer" in tty1
    )
    assert "ENGINE_INSTALLER_CONSOLE=fbterm" in tty1
    assert tty1.rstrip().endswith('exec /usr/local/bin/engine-installer "$@"')
    # The terminal is chosen after udev's coldplug (the firmware's frame buffer is replaced
    # then), and fbterm only on a depth it draws (it hangs on others, OVMF's 24 bpp).
    assert tty1.index("udevadm settle") < tty1.index("bits_per_pixel") < tty1.index("exec fbterm")
    packages = (base.recipe_dir() / "packages.txt").read_text().split()
    assert {"fbterm", "fonts-vlgothic", "fontconfig"} <= set(packages)
    for text in (serial, vt):
        assert "Requires=engine-checkmedia.service" in text
        assert "agetty" not in text and "/bin/login" not in text
    check = (units / "engine-checkmedia.service").read_text()
    assert "ConditionKernelCommandLine=engine.checkmedia=1" in check


def test_console_devices_for_the_medium_check():
    devices = live_check.console_devices("quiet console=tty0 console=ttyS0,115200n8")
    assert devices == [Path("/dev/tty1"), Path("/dev/ttyS0")]


def medium_dir(tmp_path: Path) -> Path:
    medium = tmp_path / "medium"
    fake_payload(medium / "engine")
    lines = []
    for path in sorted(medium.rglob("*")):
        if path.is_file():
            digest = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True,
                                    check=True).stdout.split()[0]  # fmt: skip
            lines.append(f"{digest}  {path.relative_to(medium).as_posix()}\n")
    (medium / "SHA256SUMS").write_text("".join(lines))
    return medium


def test_live_check_passes_a_good_medium_and_stops_a_bad_one(tmp_path, capsys):
    medium = medium_dir(tmp_path)
    check_medium_dir(medium)
    consoles = live_check.Consoles([])
    assert live_check.run_check(medium, consoles) == 0
    with open(medium / "engine" / "root.img", "r+b") as handle:
        handle.seek(100)
        handle.write(b"\xff")
    assert live_check.run_check(medium, consoles) == 1
    out = capsys.readouterr().out
    assert "THE MEDIUM IS DAMAGED" in out and "engine/root.img" in out


def test_base_key_follows_the_recipe(tmp_path):
    recipe = tmp_path / "live"
    shutil.copytree(base.recipe_dir(), recipe)
    key = base.base_key(recipe)
    assert key == base.base_key(base.recipe_dir())
    (recipe / "overlay" / "extra").write_text("the app layer is not part of the base\n")
    assert base.base_key(recipe) == key
    with open(recipe / "packages.txt", "a") as handle:
        handle.write("less\n")
    assert base.base_key(recipe) != key


def test_cache_dir_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv(base.CACHE_ENV, str(tmp_path))
    assert base.default_cache_dir() == tmp_path


# -- boot path: what starts when, and what the initramfs carries -------------------------------

LIVE = base.recipe_dir()
UNITS = LIVE / "overlay/etc/systemd/system"
INITRAMFS_MODULES = set(base.read_list(LIVE / "base-hooks" / "initramfs-modules"))
REPO = base.repo_root()
# What the initramfs needs to reach a disk on each bus a machine snapshot names (DiskInfo.bus):
# the host controller drivers and the disk driver. A disk on any of them may hold the medium.
BUS_DRIVERS = {
    "ata": {"ahci", "ata_piix", "sd_mod", "sr_mod"},
    "nvme": {"nvme"},
    "usb": {"xhci_pci", "ehci_pci", "usb_storage", "uas", "sd_mod"},
    "mmc": {"sdhci_pci", "sdhci_acpi", "rtsx_pci_sdmmc", "mmc_block"},
    "virtio": {"virtio_pci", "virtio_blk"},
}
# Every laptop boots the installer from a USB stick: xHCI from 2012 (Ivy Bridge) on, EHCI
# before; both need the USB storage drivers.
USB_STICK = {"usb_storage", "uas", "sd_mod"}


def usb_drivers(released: int) -> set[str]:
    return USB_STICK | ({"xhci_pci"} if released >= 2012 else {"ehci_pci"})


@pytest.mark.parametrize("path", sorted((REPO / "recorded-machines").glob("*.json")), ids=str)
def test_initramfs_reaches_every_disk_of_every_recorded_machine(path):
    import json

    buses = {disk["bus"] for disk in json.loads(path.read_text())["disks"]}
    assert buses <= set(BUS_DRIVERS), f"{path.name}: a bus with no driver list here: {buses}"
    for bus in buses:
        assert BUS_DRIVERS[bus] <= INITRAMFS_MODULES, (path.name, bus)


def test_initramfs_carries_every_profiles_storage_and_usb_drivers():
    from engine_installer.hw.profiles import load_profiles

    profiles = load_profiles(REPO / "hw-profiles")
    assert len(profiles) >= 10
    for profile in profiles:
        missing = (set(profile.storage_controllers) | usb_drivers(profile.released)) - (
            INITRAMFS_MODULES
        )
        assert not missing, f"{profile.name}: initramfs-modules lacks {sorted(missing)}"


def test_initramfs_is_a_curated_list_and_the_hook_enforces_it():
    setup = (LIVE / "base-hooks" / "setup.sh").read_text()
    assert "MODULES=list" in setup and "MODULES=most" not in setup.replace("not MODULES=most", "")
    # Not a modules.d file: initramfs-tools would load every listed module at every boot.
    assert "modules.d" not in setup and "hooks/engine-modules" in setup
    listed = "/usr/share/engine-installer/initramfs-modules"
    assert listed in setup
    hook = (LIVE / "base-hooks" / "initramfs-hook.sh").read_text()
    assert listed in hook and "manual_add_modules" in hook and "--show-depends" in hook
    # The live layers and the medium's file system are always there.
    assert {"isofs", "squashfs", "overlay", "loop"} <= INITRAMFS_MODULES


def test_base_key_follows_the_initramfs_module_list(tmp_path):
    recipe = tmp_path / "live"
    shutil.copytree(LIVE, recipe)
    key = base.base_key(recipe)
    with open(recipe / "base-hooks" / "initramfs-modules", "a") as handle:
        handle.write("btrfs\n")
    assert base.base_key(recipe) != key


@pytest.mark.parametrize("unit", ["engine-installer@.service", "engine-installer-serial@.service"])
def test_installer_units_start_as_soon_as_their_console_exists(unit):
    text = (UNITS / unit).read_text()
    settings = dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and line[0] != "#"
    )
    assert settings["Type"] == "simple"  # not idle: no waiting for every other job
    assert settings["DefaultDependencies"] == "no"  # not after basic.target
    after = ["local-fs.target", "engine-checkmedia.service"]
    if unit == "engine-installer@.service":  # tty1 also draws on the frame buffer udev brings
        after.append("systemd-udev-trigger.service")
    assert settings["After"].split() == after
    assert settings["ConditionPathExists"] == "/dev/%I"
    assert "udev-settle" not in text and "systemd-user-sessions" not in text
    check = (UNITS / "engine-checkmedia.service").read_text()
    assert "DefaultDependencies=no" in check  # the installers wait for it


def test_masked_units_are_masked_in_the_installer_layer(tmp_path):
    from engine_installer.iso import app_layer

    units = base.read_list(LIVE / "masked-units")
    assert "e2scrub_reap.service" in units and "getty-static.service" in units
    assert not {"systemd-udevd.service", "systemd-udev-trigger.service"} & set(units)
    app_layer.mask_units(tmp_path, units)
    for unit in units:
        link = tmp_path / "etc/systemd/system" / unit
        assert link.is_symlink() and os.readlink(link) == "/dev/null"


def test_unneeded_generators_are_disabled_in_the_installer_layer(tmp_path):
    from engine_installer.iso import app_layer

    generators = base.read_list(LIVE / "masked-generators")
    assert "systemd-gpt-auto-generator" in generators
    # /tmp from live-boot's fstab, and systemd.mask= / systemd.unit= on the command line
    assert not {"systemd-fstab-generator", "systemd-debug-generator"} & set(generators)
    app_layer.mask_generators(tmp_path, generators)
    for name in generators:
        link = tmp_path / "etc/systemd/system-generators" / name
        assert link.is_symlink() and os.readlink(link) == "/dev/null"


def test_systemd_draws_no_status_over_the_installer():
    conf = (LIVE / "overlay/etc/systemd/system.conf.d/engine.conf").read_text()
    assert "ShowStatus=no" in conf


def test_generator_keeps_one_login_on_tty2(tmp_path):
    run_generator(tmp_path, "boot=live quiet console=tty0 console=ttyS0")
    link = tmp_path / "normal" / "getty.target.wants" / "getty@tty2.service"
    assert os.readlink(link) == "/lib/systemd/system/getty@.service"


def test_squashfs_stays_zstd():
    assert base.read_settings(LIVE)["squashfs_compression"] == "zstd"


def test_ctrl_alt_del_is_ignored_while_the_installer_writes(tmp_path: Path) -> None:
    """The live system's Ctrl-Alt-Del target: with the installer's writing flag (its pid) the
    installer gets SIGUSR1 and nothing reboots; without it, the machine reboots."""
    import signal

    script = base.recipe_dir() / "overlay/usr/lib/engine-installer/ctrl-alt-del"
    units = base.recipe_dir() / "overlay/etc/systemd/system"
    assert "Requires=engine-ctrl-alt-del.service" in (units / "ctrl-alt-del.target").read_text()
    burst = base.recipe_dir() / "overlay/etc/systemd/system.conf.d/engine-ctrl-alt-del.conf"
    assert "CtrlAltDelBurstAction=none" in burst.read_text()
    flag = tmp_path / "writing"
    env = dict(os.environ, ENGINE_WRITING_FLAG=str(flag), ENGINE_REBOOT="echo would-reboot")
    got: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, _frame: got.append(signum))
    try:
        flag.write_text(f"{os.getpid()}\n")
        out = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True).stdout
        assert "ignored" in out and "would-reboot" not in out
        assert got == [signal.SIGUSR1]
        flag.unlink()
        out = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True).stdout
        assert out.strip() == "would-reboot"
    finally:
        signal.signal(signal.SIGUSR1, previous)


@pytest.mark.skipif(shutil.which("mksquashfs") is None, reason="mksquashfs (make setup)")
def test_squashing_shows_progress_on_a_terminal_only(tmp_path: Path) -> None:
    """A base build squashes for minutes: on a terminal (make demo) mksquashfs's bar shows it
    going; in a log it stays quiet."""
    import pexpect

    tree = tmp_path / "tree"
    tree.mkdir()
    for i in range(32):
        (tree / f"f{i}").write_bytes(os.urandom(256 * 1024))
    # xz: a second or two of work, so mksquashfs's progress thread (which reads the terminal
    # width as it starts) is running before the end even on a busy machine.
    script = (
        "import sys; from pathlib import Path; from engine_installer.iso.base import mksquashfs; "
        "mksquashfs(Path(sys.argv[1]), Path(sys.argv[2]), {'squashfs_compression': 'xz'})"
    )
    args = ["-c", script, str(tree), str(tmp_path / "a.squashfs")]
    child = pexpect.spawn(sys.executable, args, dimensions=(24, 80), timeout=120)
    shown = child.read().decode(errors="replace")
    child.close()
    assert child.exitstatus == 0, shown
    assert re.search(r"\] +\d+/\d+ +100%", shown), shown
    quiet = subprocess.run(
        [sys.executable, *args[:3], str(tmp_path / "b.squashfs")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert quiet.stdout == "" and quiet.stderr == ""
