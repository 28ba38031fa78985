"""The end-to-end matrix, in QEMU under TCG.

Cells that need the installer ISO (`engine-iso build`) boot it as a DVD or a USB stick under
SeaBIOS or OVMF and drive the real text UI over the serial console (qemu/console.py reads the
screen with pyte). Cells that need no ISO run the same installer inside a tool guest
(qemu/guest.py: the host's kernel, this checkout over 9p, a real guest disk): the power cut and
the installer-over-serial flows. Every installed disk is then booted alone and the sample
Engine's status line says what booted.

Environment: ENGINE_POWERCUT_RUNS (default 10), ENGINE_POWERCUT_SEED, ENGINE_E2E_LANES (2: small
VMs run two at a time), ENGINE_QEMU_ACCEL (tcg).
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from qemu.console import SerialConsole
from qemu.disks import answer_file, flatten, installer_command, vm_hashes
from qemu.guest import DONE, tool_guest
from qemu.harness import boot_installed_disk as boot_disk
from qemu.harness import laptop, make_overlay
from qemu.vga import wait_installer_on_screen, wait_japanese_on_screen1

pytestmark = pytest.mark.qemu

REPO = Path(__file__).resolve().parents[2]
POWERCUT_RUNS = int(os.environ.get("ENGINE_POWERCUT_RUNS", "10"))
POWERCUT_SEED = int(os.environ.get("ENGINE_POWERCUT_SEED", "5021"))
# Independent small VMs run this many at a time (one per core of a 2-core CI machine).
LANES = int(os.environ.get("ENGINE_E2E_LANES", "2"))
GUEST_TIMEOUT = 600
POWER_OFF_TIMEOUT = 60  # a few seconds on an idle machine
START = "@@UPGRADE-START"
# An upgrade's first disk write ("Step 1 of 8: Writing Engine 5.0 ..."): the cuts land after it.
FIRST_WRITE = r"^Step 1 of \d+: Writing Engine"
GUEST_MODULES = "ahci sd_mod nvme ext4 vfat nls_cp437 nls_iso8859_1 nls_ascii loop qemu_fw_cfg"


def guest_script(path: Path, body: str) -> Path:
    """A script for the tool guest: drivers loaded, in this checkout, then body."""
    path.write_text(f"modprobe -a {GUEST_MODULES} 2>/dev/null\ncd {REPO}\n{body}\n")
    return path


def upgrade_script(tmp: Path, payload: Path, target: str = "/dev/sda") -> Path:
    answers = answer_file(tmp / "upgrade.toml", target, payload, action="upgrade")
    installer = " ".join(installer_command())
    # stdin from /dev/null: a tool run by the installer must never wait on the console.
    return guest_script(
        tmp / "upgrade.sh", f"echo {START}\n{installer} --answers {answers} </dev/null"
    )


def last_phase(serial: str) -> str:
    steps = re.findall(r"^Step (\d+ of \d+): ([^\n]*)$", serial, re.MULTILINE)
    return " ".join(steps[-1]) if steps else "(before the first step)"


@pytest.mark.cell("power cut during upgrade (tool guest)")
def test_power_cut_during_upgrade(tmp_path, payloads, engine45_disk, tool_initramfs):
    """Kill QEMU at seeded random moments while the guest upgrades 4.5 → 5.0; each time the
    disk boots (4.5 on A or 5.0 on B) and the VM files are byte-identical."""
    base, hashes = engine45_disk
    assert hashes, "the prepared disk has no VM files"
    script = upgrade_script(tmp_path, payloads["5.0"])

    # Reference run: the whole upgrade, to measure its window under this machine's load.
    ref = make_overlay(base, tmp_path / "reference.qcow2")
    vm = tool_guest(script, tool_initramfs, ref, workdir=tmp_path / "reference",
                    disk_format="qcow2", cache="writeback")  # fmt: skip
    with vm:
        vm.wait_for(FIRST_WRITE, timeout=GUEST_TIMEOUT)
        started = time.monotonic()
        done = vm.wait_for(re.escape(DONE) + r"(\d+)", timeout=GUEST_TIMEOUT)
        window = time.monotonic() - started
        vm.wait_exit(60)
    serial = vm.serial_text()
    assert done.group(1) == "0", serial[-3000:]
    assert "upgraded on /dev/sda, slot B (was 4.5" in serial
    groups, _ = boot_disk(ref, tmp_path / "reference-boot", disk_format="qcow2")
    assert groups[:3] == ("5.0", "50", "B")
    assert vm_hashes(flatten(ref, tmp_path / "reference.raw")) == hashes
    (tmp_path / "reference.raw").unlink()

    # The runs are independent (each its own overlay of the read-only base): LANES of them at
    # a time, each lane one small VM (1 vCPU) at a time, so two cores serve two lanes. The
    # seeded draws are made up front, in order, so a seed names the same cuts whatever the lanes.
    rng = random.Random(POWERCUT_SEED)
    draws = [(rng.uniform(0.0, window * 1.1), rng.choice(["bios", "uefi"]))
             for _run in range(POWERCUT_RUNS)]  # fmt: skip

    def cut(run: int) -> str:
        delay, firmware = draws[run]
        overlay = make_overlay(base, tmp_path / f"cut-{run}.qcow2")
        vm = tool_guest(script, tool_initramfs, overlay, workdir=tmp_path / f"cut-{run}",
                        disk_format="qcow2", cache="writeback")  # fmt: skip
        with vm:
            vm.wait_for(FIRST_WRITE, timeout=GUEST_TIMEOUT)
            time.sleep(delay)
            vm.kill()  # the power cut: QEMU dies, whatever the guest had in flight is lost
        phase = last_phase(vm.serial_text())
        groups, _ = boot_disk(overlay, tmp_path / f"cut-{run}-boot", firmware=firmware,
                              disk_format="qcow2")  # fmt: skip
        version, _build, slot, _vms = groups
        outcome = f"run {run}: cut after {delay:.2f}s in [{phase}] → {version} slot {slot}"
        assert (version, slot) in (("4.5", "A"), ("5.0", "B")), outcome
        raw = flatten(overlay, tmp_path / f"cut-{run}.raw")
        assert vm_hashes(raw) == hashes, f"VM files changed: {outcome}"
        raw.unlink()
        overlay.unlink()
        return outcome

    with ThreadPoolExecutor(max_workers=LANES) as lanes:
        outcomes = list(lanes.map(cut, range(POWERCUT_RUNS)))  # re-raises a run's failure
    print(f"\nupgrade window {window:.1f} s; seed {POWERCUT_SEED}; {LANES} lanes")
    print("\n".join(outcomes))


# -- the text UI over the serial console -------------------------------------------------------


def tui_script(tmp: Path, payload: Path, name: str = "tui.sh") -> Path:
    """Tool-guest script: the real text UI on ttyS0 (80x24, ASCII), from payload."""
    installer = " ".join(installer_command())
    return guest_script(
        tmp / name,
        "stty -F /dev/ttyS0 rows 24 cols 80\n"
        "export TERM=vt100 ENGINE_INSTALLER_LOG=/run/log/installer.log\n"
        f"setsid -w -c {installer} --source {payload} --ascii </dev/ttyS0 >/dev/ttyS0 "
        "2>/run/log/stderr\necho; echo @@TUI-EXIT $?; cat /run/log/stderr",
    )


def through_keyboard(
    console: SerialConsole, version: str, layout: str = "", firmware: str = ""
) -> None:
    """Screens 1-4 as a technician does them; the existing-install screen (5) comes next.

    With firmware ("bios"/"uefi"), the welcome screen's hardware check must recognise the
    machine as the matching QEMU lab profile (hw-profiles/qemu-q35-{seabios,ovmf}.toml)."""
    console.wait_for("1/5 Install choice", timeout=GUEST_TIMEOUT)
    console.wait_focused("Install Engine")
    console.press("enter")
    screen = console.wait_for("2/5 Welcome")
    assert f"Welcome to the Engine {version}" in screen
    if firmware:
        screen = console.wait_for(r"Compatibility: \S+  \(.*\)|check unavailable", 120, True)
        profile = QEMU_PROFILES[firmware]
        assert f"Compatibility: PASS  ({profile} profile)" in screen, screen
    console.press("enter")
    console.wait_for("3/5 Licence agreement")
    console.wait_focused("> Back <")  # the safe default
    console.press("tab")
    console.wait_focused("> Accept <")
    console.press("enter")
    console.wait_for("4/5 Keyboard layout")
    if layout:
        console.type(layout)
        console.wait_for(f"Search: {layout}")
    console.press("enter")


QEMU_PROFILES = {  # the name= of hw-profiles/qemu-q35-seabios.toml and qemu-q35-ovmf.toml
    "bios": "QEMU Q35 + ICH9 (SeaBIOS), lab",
    "uefi": "QEMU Q35 + ICH9 (OVMF), lab",
}


def confirm_summary(console: SerialConsole, button: str) -> str:
    screen = console.wait_for("Summary")
    console.wait_focused("> Back <")
    console.press("tab")
    console.wait_focused(f"> {button} <")
    console.press("enter")
    return screen


def power_off(console: SerialConsole, vm) -> None:
    """The done screen's Power off: the machine switches off (QEMU exits) promptly, as a
    technician expects (a service that ignores SIGTERM holds it for systemd's 90 s)."""
    console.press("tab")
    console.wait_focused("> Power off <")
    console.press("enter")
    vm.wait_exit(POWER_OFF_TIMEOUT)


def fresh_install(console: SerialConsole, vm, disk_line: str, layout: str = "") -> str:
    through_keyboard(console, "5.0", layout)
    screen = console.wait_for("5/5 Target disk", timeout=120)
    assert "No Engine installation was found" in screen
    console.wait_focused(disk_line)
    console.press("enter")
    summary = confirm_summary(console, "Install Engine")
    assert "WILL BE ERASED" in summary
    done = console.wait_for(r"Installed Engine 5\.0 \(build 50\)|could not finish", 600, True)
    assert "Installed Engine 5.0 (build 50)" in done, done
    assert "Remove the installation media" in done
    power_off(console, vm)
    return done


def blank_disk(path: Path, size: int = 1200 * 1024**2) -> Path:
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


FRESH_GUEST = [
    # (cell, firmware for the disk boot, nvme, sector size, disk line on screen 5)
    ("fresh install over serial, AHCI, SeaBIOS (tool guest)", "bios", False, 512, "/dev/sda"),
    ("fresh install over serial, NVMe, OVMF (tool guest)", "uefi", True, 512, "/dev/nvme0n1"),
    ("fresh install over serial, 4Kn NVMe, OVMF (tool guest)", "uefi", True, 4096, "/dev/nvme0n1"),
]


@pytest.mark.parametrize(
    ("cell", "firmware", "nvme", "sector", "disk_line"),
    [pytest.param(*row, marks=pytest.mark.cell(row[0]), id=row[0].split(",")[1].strip())
     for row in FRESH_GUEST],
)  # fmt: skip
def test_fresh_install_over_serial(
    tmp_path, payloads, tool_initramfs, cell, firmware, nvme, sector, disk_line
):
    disk = blank_disk(tmp_path / "laptop.img")
    script = tui_script(tmp_path, payloads["5.0"])
    vm = tool_guest(script, tool_initramfs, disk, workdir=tmp_path / "installer",
                    nvme=nvme, sector_size=sector, firmware=firmware)  # fmt: skip
    with vm:
        console = SerialConsole(vm)
        fresh_install(console, vm, disk_line, layout="de")
    assert "@@TUI-EXIT 0" in vm.serial_text()
    groups, _ = boot_disk(disk, tmp_path / "disk-boot", firmware=firmware, nvme=nvme,
                          sector_size=sector)  # fmt: skip
    assert groups[:3] == ("5.0", "50", "A")


@pytest.mark.cell("upgrade over serial 4.5 → 5.0 (tool guest, SeaBIOS)")
def test_upgrade_over_serial(tmp_path, payloads, tool_initramfs, engine45_disk):
    base, hashes = engine45_disk
    disk = make_overlay(base, tmp_path / "laptop.qcow2")
    script = tui_script(tmp_path, payloads["5.0"])
    vm = tool_guest(script, tool_initramfs, disk, workdir=tmp_path / "installer",
                    disk_format="qcow2")  # fmt: skip
    with vm:
        console = SerialConsole(vm)
        through_keyboard(console, "5.0")
        screen = console.wait_for("An Engine installation was found", timeout=120)
        assert "Engine 4.5 (build 45), can be upgraded" in screen
        assert "This medium:  Engine 5.0 (build 50)" in screen
        console.wait_focused("> Upgrade <")
        console.press("enter")
        summary = confirm_summary(console, "Upgrade Engine")
        assert "kept" in summary
        done = console.wait_for(r"Upgraded /dev/sda to Engine 5\.0|could not finish", 600, True)
        assert "Upgraded /dev/sda to Engine 5.0" in done, done
        assert "slot B" in done
        # Local and custom VMs need a manual PV-driver upgrade; shared ones do not.
        assert "build-box (custom, PV 4.5.0)" in done and "alice-laptop (local, PV" in done
        assert "office-desktop" not in done
        power_off(console, vm)
    groups, _ = boot_disk(disk, tmp_path / "disk-boot", disk_format="qcow2")
    assert groups == ("5.0", "50", "B", "3")
    assert vm_hashes(flatten(disk, tmp_path / "after.raw")) == hashes


@pytest.mark.cell("remove and reinstall over serial (tool guest, OVMF)")
def test_remove_and_reinstall_over_serial(tmp_path, payloads, tool_initramfs, engine45_disk):
    base, _ = engine45_disk
    disk = make_overlay(base, tmp_path / "laptop.qcow2")
    script = tui_script(tmp_path, payloads["5.0"])
    vm = tool_guest(script, tool_initramfs, disk, workdir=tmp_path / "installer",
                    disk_format="qcow2", firmware="uefi")  # fmt: skip
    with vm:
        console = SerialConsole(vm)
        through_keyboard(console, "5.0")
        console.wait_for("An Engine installation was found", timeout=120)
        console.press("tab")
        console.wait_focused("> Remove and reinstall <")
        console.press("enter")
        summary = confirm_summary(console, "Erase and reinstall")
        assert "ALL DATA ON /dev/sda WILL BE ERASED" in summary
        done = console.wait_for(r"Reinstalled Engine 5\.0|could not finish", 600, True)
        assert "Reinstalled Engine 5.0 (build 50) on /dev/sda" in done, done
        power_off(console, vm)
    groups, _ = boot_disk(disk, tmp_path / "disk-boot", firmware="uefi", disk_format="qcow2")
    assert groups == ("5.0", "50", "A", "0")
    assert vm_hashes(flatten(disk, tmp_path / "after.raw")) == {}


@pytest.mark.cell("downgrade refused over serial (tool guest)")
def test_downgrade_refused_over_serial(tmp_path, payloads, tool_initramfs, engine50_disk):
    base, hashes = engine50_disk
    disk = make_overlay(base, tmp_path / "laptop.qcow2")
    script = tui_script(tmp_path, payloads["4.5"])
    vm = tool_guest(script, tool_initramfs, disk, workdir=tmp_path / "installer",
                    disk_format="qcow2")  # fmt: skip
    with vm:
        console = SerialConsole(vm)
        through_keyboard(console, "4.5")
        screen = console.wait_for("stops running", timeout=120)
        assert "Engine 5.0 (build 50), NEWER than this medium" in screen
        vms = {line.split()[1]: line for line in screen.splitlines() if " PV " in line}
        assert "stops running (for 5.0)" in vms["finance-desktop"]
        assert "stops running (for 5.0)" in vms["field-notes"]
        assert "stops running" not in vms["old-build-box"]  # published for 4.5: still runs
        console.wait_focused("> Back <")
        console.press("tab", "enter")  # Downgrade, without ticking the confirmation
        console.wait_for("Tick the confirmation to")
    raw = flatten(disk, tmp_path / "after.raw")
    assert vm_hashes(raw) == hashes
    groups, _ = boot_disk(disk, tmp_path / "disk-boot", disk_format="qcow2")
    assert groups[:3] == ("5.0", "50", "A")


@pytest.mark.cell("unattended via engine.autoinstall=fwcfg (tool guest)")
def test_unattended_autoinstall_fwcfg(tmp_path, payloads, tool_initramfs):
    disk = blank_disk(tmp_path / "laptop.img")
    answers = answer_file(tmp_path / "answers.toml", "/dev/sda", payloads["5.0"])
    installer = " ".join(installer_command())
    entry = installer[: -len("engine_installer")] + "engine_installer.autoinstall"
    script = guest_script(tmp_path / "auto.sh", f"{entry} --ascii </dev/null")
    script_tui = guest_script(
        tmp_path / "auto-tui.sh",
        "stty -F /dev/ttyS0 rows 24 cols 80\nexport TERM=vt100 "
        "ENGINE_INSTALLER_LOG=/run/log/installer.log\n"
        f"setsid -w -c {entry} --ascii --source {payloads['5.0']} </dev/ttyS0 >/dev/ttyS0",
    )
    vm = tool_guest(script, tool_initramfs, disk, workdir=tmp_path / "installer",
                    fw_cfg={"opt/engine/answers.toml": answers},
                    extra_append="engine.autoinstall=fwcfg")  # fmt: skip
    # Without engine.autoinstall the installer asks: the text UI comes up, no disk is touched.
    asks = tool_guest(script_tui, tool_initramfs, disk, workdir=tmp_path / "no-argument",
                      fw_cfg={"opt/engine/answers.toml": answers})  # fmt: skip
    with asks:
        SerialConsole(asks).wait_for("1/5 Install choice", timeout=GUEST_TIMEOUT)
    with open(disk, "rb") as handle:
        assert handle.read(4 * 1024**2).count(0) == 4 * 1024**2, "the disk was written"
    with vm:
        vm.wait_for(re.escape(DONE) + r"\d+", timeout=GUEST_TIMEOUT)
    serial = vm.serial_text()
    assert "Unattended install: answers from /sys/firmware/qemu_fw_cfg" in serial
    assert f"{DONE}0" in serial, serial[-3000:]
    assert "Engine 5.0 build 50 installed on /dev/sda, slot A" in serial
    groups, _ = boot_disk(disk, tmp_path / "disk-boot")
    assert groups[:3] == ("5.0", "50", "A")


# -- the installer ISO: DVD or USB stick, SeaBIOS or OVMF --------------------------------------

ISO_BOOT_TIMEOUT = 900  # GRUB → live system → installer under TCG: 1-2 min on an idle machine


def iso_installer(iso: Path, disk: Path, tmp: Path, firmware: str, media: str, **kwargs):
    return laptop(disk, media=iso, media_kind=media, firmware=firmware,
                  workdir=tmp / "installer", **kwargs)  # fmt: skip


def box_text(screen: str) -> str:
    """A dialog's text as one line, as a person reads it: the box's borders dropped and the
    rows joined, so a sentence the dialog wrapped reads whole."""
    rows = (row.strip().strip("|+").strip() for row in screen.splitlines())
    return re.sub(r"\s+", " ", " ".join(rows))


def iso_build(iso: Path) -> str:
    """The payload build number on the ISO (its manifest), as the screens show it."""
    import pycdlib

    reader = pycdlib.PyCdlib()
    reader.open(str(iso))
    try:
        from io import BytesIO

        data = BytesIO()
        reader.get_file_from_iso_fp(data, rr_path="/engine/manifest.json")
    finally:
        reader.close()
    return json.loads(data.getvalue())["build"]


# SeaBIOS + DVD boots the medium's 日本語 entry: Japanese on both consoles (see below).
JAPANESE_CELL = ("bios", "dvd")
ISO_FRESH = [
    pytest.param(fw, media, id=f"{fw}-{media}", marks=pytest.mark.cell(
        f"ISO to screen 1, fresh install, {'SeaBIOS' if fw == 'bios' else 'OVMF'}, "
        f"{media.upper()}"
        + (" (Japanese boot entry: serial and VGA)" if (fw, media) == JAPANESE_CELL else "")))
    for fw in ("bios", "uefi") for media in ("dvd", "usb")
]  # fmt: skip


def at_screen1(console: SerialConsole, vm, cell: str) -> None:
    """The medium's boot reached screen 1: the whole first frame is drawn, the live system
    reported where its boot time went, and nothing crashed on the way."""
    console.wait_for("1/5 Install choice", timeout=ISO_BOOT_TIMEOUT)
    assert "Install Engine on this laptop" in console.text()
    times = vm.boot_times()
    assert times is not None, "no engine-boot-times report before screen 1"
    print(f"\n{cell}: {times.summary()}")
    text = vm.serial_text()
    assert "Traceback" not in text, re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)[-3000:]


def japanese_entry_then_english(console: SerialConsole, vm, workdir: Path) -> None:
    """The GRUB menu's 日本語 entry, chosen as a technician does (two Down keys, Enter): screen
    1 in Japanese on the serial console (the harness answers the installer's cursor-position
    query as a real terminal does) and on the laptop's screen, where tty1's installer runs
    inside fbterm (qemu/vga.py reads the glyphs back). Then the language line switches the
    serial installer to English, the walk the other cells share."""
    console.wait_for("日本語: Engine|\\?\\?\\?: Engine", timeout=ISO_BOOT_TIMEOUT, regex=True)
    console.press("down", "down", settle=1.0)
    console.press("enter")
    screen = console.wait_for("Engine をインストールする", timeout=ISO_BOOT_TIMEOUT)
    assert "1/5 インストールの選択" in screen and "(*) 日本語" in screen
    shown, detail = wait_japanese_on_screen1(vm, workdir, timeout=180)  # fbterm starts
    vm.screenshot(workdir / "vga-japanese.png")
    assert shown, f"no Japanese glyphs on the VGA console ({detail}): see vga-japanese.png"
    console.press("up", "left", "enter")  # the language line: English
    console.wait_for("1/5 Install choice")
    console.press("down")  # back to the menu: Install Engine


@pytest.mark.parametrize(("firmware", "media"), ISO_FRESH)
def test_iso_fresh_install(tmp_path, installer_iso, firmware, media):
    """Each firmware x medium boots the ISO to screen 1 on the serial console and on the
    laptop's screen (the boot-time breakdown is printed and listed at the end of the run),
    then the five screens, a fresh install, a prompt power off, and the installed disk."""
    build = iso_build(installer_iso)
    disk = blank_disk(tmp_path / "laptop.img")
    with iso_installer(installer_iso, disk, tmp_path, firmware, media) as vm:
        console = SerialConsole(vm)
        if (firmware, media) == JAPANESE_CELL:
            # (its boot-time breakdown then counts the keys and the switch to English too)
            japanese_entry_then_english(console, vm, tmp_path)
        else:
            console.boot_highlighted_entry(ISO_BOOT_TIMEOUT)
        at_screen1(console, vm, f"{firmware}/{media}")
        # The laptop's own screen shows the installer too (tty1, on the frame buffer the
        # graphics driver brings; under OVMF the firmware's one is replaced at coldplug).
        shown, detail = wait_installer_on_screen(vm, tmp_path, timeout=120)
        vm.screenshot(tmp_path / "vga-screen1.png")
        assert shown, f"no installer on the VGA screen ({detail}): see vga-screen1.png"
        # hw-check in the live system recognises the QEMU lab profile of this firmware.
        through_keyboard(console, "5.0", "de", firmware=firmware)
        screen = console.wait_for("5/5 Target disk", timeout=300)
        console.wait_focused("QEMU HARDDISK")
        if media == "usb":  # the stick the installer runs from is never offered
            assert re.search(r"not offered: /dev/\S+ is the boot medium the installer runs from",
                             box_text(screen)), screen  # fmt: skip
        console.press("enter")
        confirm_summary(console, "Install Engine")
        done = console.wait_for(r"Installed Engine 5\.0|could not finish", 900, True)
        assert f"Installed Engine 5.0 (build {build})" in done, done
        power_off(console, vm)
    groups, _ = boot_disk(disk, tmp_path / "disk-boot", firmware=firmware)
    assert groups[:3] == ("5.0", build, "A")


@pytest.mark.cell("ISO upgrade 4.5 → 5.0, OVMF, USB")
def test_iso_upgrade(tmp_path, installer_iso, engine45_disk):
    base, hashes = engine45_disk
    build = iso_build(installer_iso)
    disk = make_overlay(base, tmp_path / "laptop.qcow2")
    vm = iso_installer(installer_iso, disk, tmp_path, "uefi", "usb", disk_format="qcow2")
    with vm:
        console = SerialConsole(vm)
        console.boot_highlighted_entry(ISO_BOOT_TIMEOUT)
        console.wait_for("1/5 Install choice", timeout=ISO_BOOT_TIMEOUT)
        through_keyboard(console, "5.0")
        screen = console.wait_for("An Engine installation was found", timeout=300)
        assert "Engine 4.5 (build 45), can be upgraded" in screen
        console.press("enter")
        confirm_summary(console, "Upgrade Engine")
        done = console.wait_for(r"Upgraded /dev/\S+ to Engine 5\.0|could not finish", 900, True)
        assert "could not finish" not in done, done
        assert "build-box (custom, PV 4.5.0)" in done and "alice-laptop (local, PV" in done
        assert "office-desktop" not in done
        power_off(console, vm)
    groups, _ = boot_disk(disk, tmp_path / "disk-boot", firmware="uefi", disk_format="qcow2")
    assert groups == ("5.0", build, "B", "3")
    assert vm_hashes(flatten(disk, tmp_path / "after.raw")) == hashes


def add_kernel_argument(console: SerialConsole, argument: str) -> None:
    """In the ISO's GRUB menu (on the serial console): e, go to the linux line, append the
    argument, Ctrl-X boots it - what a technician does by hand."""
    console.wait_for("Install Engine", timeout=ISO_BOOT_TIMEOUT)
    console.press("e", settle=1.5)
    screen = console.wait_for("linux /live/vmlinuz")
    lines = screen.splitlines()
    first = next(i for i, line in enumerate(lines) if "setparams" in line)
    target = next(i for i, line in enumerate(lines) if "linux /live/vmlinuz" in line)
    console.press(*["down"] * (target - first), "\x05")  # Ctrl-E: end of the line
    console.type(" " + argument, settle=0.1)
    console.wait_for(argument, check=grub_editor_lines)
    console.press("\x18")  # Ctrl-X: boot


def grub_editor_lines(screen: str) -> str:
    """The GRUB editor's text with its wrapped lines joined: a line longer than the box ends
    in a '\\' in the last column and goes on in the next row."""
    rows = [row.strip() for row in screen.splitlines()]
    rows = [row[1:-1] if row.startswith("|") and row.endswith("|") else row for row in rows]
    return "".join(row.rstrip()[:-1] if row.rstrip().endswith("\\") else row + "\n"
                   for row in rows)  # fmt: skip


@pytest.mark.cell("ISO unattended (engine.autoinstall=fwcfg), SeaBIOS, DVD")
def test_iso_unattended(tmp_path, installer_iso):
    build = iso_build(installer_iso)
    disk = blank_disk(tmp_path / "laptop.img")
    answers = answer_file(tmp_path / "answers.toml", "/dev/sda", None, action="install")
    vm = iso_installer(installer_iso, disk, tmp_path, "bios", "dvd",
                       fw_cfg={"opt/engine/answers.toml": answers})  # fmt: skip
    with vm:
        console = SerialConsole(vm)
        add_kernel_argument(console, "engine.autoinstall=fwcfg")
        # The serial unit runs it, or says that the tty1 unit does and when it has finished.
        vm.wait_for(r"Unattended install finished|unattended install has finished",
                    timeout=ISO_BOOT_TIMEOUT)  # fmt: skip
        serial = vm.serial_text()
    if "Unattended install finished" in serial:
        assert f"Engine 5.0 build {build} installed on /dev/sda, slot A" in serial
    groups, _ = boot_disk(disk, tmp_path / "disk-boot")
    assert groups[:3] == ("5.0", build, "A")


@pytest.mark.cell("ISO remove and reinstall, SeaBIOS, USB")
def test_iso_remove_and_reinstall(tmp_path, installer_iso, engine45_disk):
    base, _ = engine45_disk
    build = iso_build(installer_iso)
    disk = make_overlay(base, tmp_path / "laptop.qcow2")
    vm = iso_installer(installer_iso, disk, tmp_path, "bios", "usb", disk_format="qcow2")
    with vm:
        console = SerialConsole(vm)
        console.boot_highlighted_entry(ISO_BOOT_TIMEOUT)
        console.wait_for("1/5 Install choice", timeout=ISO_BOOT_TIMEOUT)
        through_keyboard(console, "5.0")
        console.wait_for("An Engine installation was found", timeout=300)
        console.press("tab")
        console.wait_focused("> Remove and reinstall <")
        console.press("enter")
        summary = confirm_summary(console, "Erase and reinstall")
        assert "WILL BE ERASED" in summary
        done = console.wait_for(r"Reinstalled Engine 5\.0|could not finish", 900, True)
        assert f"Reinstalled Engine 5.0 (build {build})" in done, done
        power_off(console, vm)
    groups, _ = boot_disk(disk, tmp_path / "disk-boot", disk_format="qcow2")
    assert groups == ("5.0", build, "A", "0")
    assert vm_hashes(flatten(disk, tmp_path / "after.raw")) == {}


@pytest.mark.cell("ISO downgrade refused (4.5 ISO, 5.0 disk), OVMF, DVD")
def test_iso_downgrade_refused(tmp_path, installer_iso_45, engine50_disk):
    base, hashes = engine50_disk
    disk = make_overlay(base, tmp_path / "laptop.qcow2")
    vm = iso_installer(installer_iso_45, disk, tmp_path, "uefi", "dvd", disk_format="qcow2")
    with vm:
        console = SerialConsole(vm)
        console.boot_highlighted_entry(ISO_BOOT_TIMEOUT)
        console.wait_for("1/5 Install choice", timeout=ISO_BOOT_TIMEOUT)
        through_keyboard(console, "4.5")
        screen = console.wait_for("stops running", timeout=300)
        assert "Engine 5.0 (build 50), NEWER than this medium" in screen
        vms = {line.split()[1]: line for line in screen.splitlines() if " PV " in line}
        assert "stops running (for 5.0)" in vms["finance-desktop"]
        assert "stops running (for 5.0)" in vms["field-notes"]
        assert "stops running" not in vms["old-build-box"]  # published for 4.5: still runs
        console.wait_focused("> Back <")
        console.press("tab", "enter")  # Downgrade, without ticking the confirmation
        console.wait_for("Tick the confirmation to")
    assert vm_hashes(flatten(disk, tmp_path / "after.raw")) == hashes
    groups, _ = boot_disk(disk, tmp_path / "disk-boot", firmware="uefi", disk_format="qcow2")
    assert groups[:3] == ("5.0", "50", "A")
