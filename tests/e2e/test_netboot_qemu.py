"""Network boot in QEMU (TCG): the installer ISO exported by `engine-iso netboot`, served by the
lab server on 127.0.0.1 (HTTP; QEMU's own TFTP serves GRUB), reached by the guest only through
user-mode networking with restrict=on (qemu/network.py).

- Two small fleets, two laptops booting at once in each. PXE: one laptop on BIOS (SeaBIOS +
  iPXE ROM → GRUB over TFTP → kernel, initrd and ISO over HTTP), one on UEFI with Secure Boot
  on and Microsoft's keys (OVMF PXE → shim → Debian's signed network GRUB over TFTP → kernel
  and initrd over TFTP, the ISO over HTTP). UEFI HTTP boot: OVMF loads the whole ISO into a RAM
  disk. In each fleet one laptop runs a fresh unattended install from its per-serial answer
  file, its report arrives at the server, screen 1 then says it booted from the network and its
  disk boots the installed Engine; the other cannot get its answers (404 on PXE, the answer
  server down on UEFI HTTP): a clear message, nothing written.
- A payload that no longer matches its hashes on the server (BIOS PXE): the medium check stops
  the boot before the installer starts.

Two laptops at once share the machine's cores: each cell takes about as long as its slower
laptop, not both.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import time
from pathlib import Path

import pytest

from engine_installer.iso.net.export import SiteArgs, export
from engine_installer.iso.net.serve import LabServer
from qemu.console import SerialConsole
from qemu.disks import answer_file
from qemu.harness import boot_installed_disk, laptop
from qemu.network import HTTP_URL, boot_network, smbios_serial
from tests.iso_helpers import corrupt_file_in_iso

pytestmark = [pytest.mark.qemu, pytest.mark.root]

BOOT_TIMEOUT = 900  # PXE: 1-2.5 min to screen 1 under TCG; UEFI HTTP adds the ISO download
INSTALL_TIMEOUT = 900
ANSWERS = HTTP_URL + "answers/{serial}.toml"
REPORTS = HTTP_URL + "reports/"
SCREEN1 = "1/5 Install choice"


def make_export(iso: Path, out: Path, *, autoinstall: str = ANSWERS, unattended: bool) -> Path:
    site = SiteArgs(autoinstall=autoinstall, report=REPORTS)
    default = "autoinstall" if unattended else "install"
    export(iso, out, url=HTTP_URL, site=site, menu_default=default, say=lambda _m: None)
    (out / "answers").mkdir()
    return out


def blank_disk(path: Path, size: int = 1200 * 1024**2) -> Path:
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


def is_blank(path: Path) -> bool:
    """Still all zeros: nothing was written to the laptop's disk."""
    with open(path, "rb") as handle:
        while block := handle.read(16 * 1024**2):
            if block.count(0) != len(block):
                return False
    return True


def server(directory: Path) -> LabServer:
    return LabServer(directory, bind="127.0.0.1", port=0, tftp_port=None, say=lambda _m: None)


# firmware → how it boots from the network unless a cell says otherwise
METHODS = {"bios": "bios-pxe", "uefi": "uefi-http", "uefi-sb": "uefi-pxe"}


def network_laptop(
    disk: Path, tmp: Path, firmware: str, export_dir: Path, port: int, serial: str, **forwards
):
    """A laptop whose firmware boots from its network card; its DMI serial is `serial`."""
    args = boot_network(METHODS[firmware], http_port=port, tftp=export_dir, **forwards)
    return laptop(
        disk, firmware=firmware, workdir=tmp / "vm", extra_args=args + smbios_serial(serial)
    )


def wait_for_reports(directory: Path, count: int, timeout: float = 120) -> dict[str, dict]:
    """The reports the lab server received, by machine serial, once `count` have arrived."""
    deadline = time.monotonic() + timeout
    while True:
        reports = [json.loads(p.read_text()) for p in (directory / "reports").glob("*.json")]
        if len(reports) >= count:
            return {r["machine"]["serial"]: r for r in reports}
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(reports)} of {count} reports arrived in {timeout:.0f} s")
        time.sleep(1)


def text_of(vm) -> str:
    """What the guest sent over its serial line, without terminal escapes. From the console
    stream, not the log file: QEMU's chardev log can repeat a byte when a socket write is
    retried, and these tests match whole sentences."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", vm.console_bytes().decode(errors="replace"))


def wait_text(vm, pattern: str, timeout: float) -> re.Match:
    """Wait for pattern in what the guest sent; a kernel panic fails at once, not at timeout."""
    deadline = time.monotonic() + timeout
    while True:
        text = text_of(vm)
        match = re.search(pattern, text)
        if match:
            return match
        panicked = "Kernel panic - not syncing" in text
        if panicked or not vm.running or time.monotonic() > deadline:
            tail = "\n".join(text.splitlines()[-20:])
            why = "the guest kernel panicked" if panicked else f"not within {timeout:.0f} s"
            raise AssertionError(f"{pattern!r} did not appear ({why}):\n{tail}")
        time.sleep(1)


# -- a fleet per firmware: one laptop installs, one cannot get its answers ----------------------

KINDS = {"bios": "PXE", "uefi": "UEFI HTTP boot", "uefi-sb": "PXE"}
INSTALLED = r"Unattended install finished|unattended install has finished"
# The whole line: a match on what has arrived so far could cut the message short.
STOPPED = r"Unattended install stopped: [^\r\n]*[\r\n]"


def check_installed(vm, console: SerialConsole, report: dict, serial: str, firmware: str) -> None:
    """What the laptop that installed shows and reported."""
    # The console's unit comes back with the screens: screen 1 says where it booted from.
    screen = console.wait_for(SCREEN1, timeout=300)
    assert "Booted from the network" in screen
    text = text_of(vm)
    assert f"Booted from the network ({KINDS[firmware]}) from {HTTP_URL}" in text
    assert "intact; starting the installer" in text  # the downloaded medium was checked
    assert report["status"] == "installed" and report["machine"]["serial"] == serial
    assert report["machine"]["mac"] == "52:54:00:12:34:56"
    result = report["result"]
    assert (result["action"], result["version"], result["slot"]) == ("install", "5.0", "A")
    assert result["disk"] == "/dev/sda" and result["report"]["to_version"] == "5.0"


def walk_to_targets(console: SerialConsole) -> tuple[str, str, str]:
    """From the stop message, as a technician on site: Enter, then screens 1-4. Returns
    screen 1, the welcome screen once its checks are done, and the target screen."""
    console.wait_for("Press Enter for the installer's screens", timeout=60)
    console.press("enter")
    screen1 = console.wait_for(SCREEN1, timeout=120)
    console.press("enter")
    console.wait_for("2/5 Welcome")
    welcome = console.wait_for(r"Compatibility: \S+  \(.*\)|check unavailable", 120, True)
    console.press("enter")
    console.wait_for("3/5 Licence agreement")
    console.press("tab", "enter")
    console.wait_for("4/5 Keyboard layout")
    console.press("enter")
    return screen1, welcome, console.wait_for("5/5 Target disk", timeout=300)


@pytest.mark.cell("network fleet, PXE: BIOS install + report; UEFI Secure Boot, no answers (404)")
def test_pxe_fleet(installer_iso, tmp_path):
    """Two laptops PXE boot from one server at once: NET-BIOS-1 (BIOS) has its own answer file
    and installs; NET-404-1 (UEFI, Secure Boot on: shim and Debian's signed network GRUB) has
    none (and there is no default): it stops, reports the failure and writes nothing; Enter
    opens the screens, whose target list shows no boot medium."""
    export_dir = make_export(installer_iso, tmp_path / "export", unattended=True)
    answer_file(export_dir / "answers" / "NET-BIOS-1.toml", "/dev/sda", None, action="install")
    disk, other = blank_disk(tmp_path / "laptop.img"), blank_disk(tmp_path / "other.img")
    with (
        server(export_dir) as srv,
        network_laptop(disk, tmp_path, "bios", export_dir, srv.port, "NET-BIOS-1") as vm,
        network_laptop(other, tmp_path / "l2", "uefi-sb", export_dir, srv.port, "NET-404-1") as vm2,
    ):
        console, console2 = SerialConsole(vm), SerialConsole(vm2)
        console.boot_highlighted_entry(BOOT_TIMEOUT)
        console2.boot_highlighted_entry(BOOT_TIMEOUT)
        stop = wait_text(vm2, STOPPED, BOOT_TIMEOUT).group(0)
        screen1, welcome, targets = walk_to_targets(console2)
        wait_text(vm, INSTALLED, BOOT_TIMEOUT + INSTALL_TIMEOUT)
        reports = wait_for_reports(export_dir, 2)
        check_installed(vm, console, reports["NET-BIOS-1"], "NET-BIOS-1", "bios")
        text2 = text_of(vm2)
    assert "no answer file for this laptop (serial NET-404-1" in stop
    assert "answers/NET-404-1.toml: the server answered 404" in stop
    assert "answers/default.toml: the server answered 404" in stop
    assert "Nothing was installed and no disk was touched." in text2
    # UEFI PXE under Secure Boot: the signed network GRUB loaded kernel and initrd over TFTP.
    assert re.search(r"over TFTP \(kernel, initrd\)\s+and HTTP \(the ISO\)", text2)  # GRUB wraps
    assert "Access Denied" not in text2 and "Security Violation" not in text2
    assert f"Booted from the network (PXE) from {HTTP_URL}" in text2
    assert "Booted from the network" in screen1 and "Secure Boot: on" in welcome, welcome
    failed = reports["NET-404-1"]
    assert failed["status"] == "failed" and "404" in failed["error"] and failed["result"] is None
    assert "/dev/sda" in targets and "QEMU HARDDISK" in targets
    assert "boot medium" not in targets and "/dev/loop" not in targets
    assert is_blank(other)
    groups, _ = boot_installed_disk(disk, tmp_path / "disk-boot", firmware="bios")
    assert groups[:3] == ("5.0", reports["NET-BIOS-1"]["result"]["build"], "A")


@pytest.mark.cell("network fleet, UEFI HTTP: install + report; answer server down")
def test_uefi_http_fleet(installer_iso, tmp_path):
    """Two laptops HTTP boot the ISO at once, from two servers: NET-UEFI-1's export hands over
    engine.autoinstall (netboot-args.txt) and it installs; NET-DOWN-1's export names an answer
    server that is down (nothing listens behind its port): it stops and writes nothing."""
    export_dir = make_export(installer_iso, tmp_path / "export", unattended=True)
    answer_file(export_dir / "answers" / "NET-UEFI-1.toml", "/dev/sda", None, action="install")
    down_answers = "http://10.0.2.100:81/answers/{serial}.toml"
    down_dir = make_export(installer_iso, tmp_path / "down", autoinstall=down_answers,
                           unattended=True)  # fmt: skip
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    disk, other = blank_disk(tmp_path / "laptop.img"), blank_disk(tmp_path / "other.img")
    down = {"extra_forwards": {81: closed}}
    with (
        server(export_dir) as srv,
        server(down_dir) as srv2,
        network_laptop(disk, tmp_path, "uefi", export_dir, srv.port, "NET-UEFI-1") as vm,
        network_laptop(
            other, tmp_path / "l2", "uefi", down_dir, srv2.port, "NET-DOWN-1", **down
        ) as vm2,  # fmt: skip
    ):
        console = SerialConsole(vm)
        console.boot_highlighted_entry(BOOT_TIMEOUT)
        SerialConsole(vm2).boot_highlighted_entry(BOOT_TIMEOUT)
        stop = wait_text(vm2, STOPPED, BOOT_TIMEOUT).group(0)
        wait_text(vm, INSTALLED, BOOT_TIMEOUT + INSTALL_TIMEOUT)
        reports = wait_for_reports(export_dir, 1)
        check_installed(vm, console, reports["NET-UEFI-1"], "NET-UEFI-1", "uefi")
        text2 = text_of(vm2)
    assert "Settings from the server: engine.autoinstall=" in text_of(vm)
    assert "http://10.0.2.100:81/answers/NET-DOWN-1.toml" in stop
    assert "closed the connection" in stop or "refused" in stop or "timed out" in stop
    assert "default.toml" not in stop  # the server is down: no point asking for the default
    assert "Unattended install: answers from" not in text2
    assert "Nothing was installed and no disk was touched." in text2
    assert is_blank(other)
    groups, _ = boot_installed_disk(disk, tmp_path / "disk-boot", firmware="uefi")
    assert groups[:3] == ("5.0", reports["NET-UEFI-1"]["result"]["build"], "A")


@pytest.mark.cell("network bad case: payload hash mismatch on the server, BIOS PXE")
def test_damaged_payload_on_the_server_stops_before_the_installer(installer_iso, tmp_path):
    export_dir = make_export(installer_iso, tmp_path / "export", unattended=False)
    # The server's copy goes bad after the export (the export itself refuses a bad ISO): a
    # copy, never the session's ISO the export hard-linked.
    served = export_dir / "engine.iso"
    served.unlink()
    shutil.copyfile(installer_iso, served)
    corrupt_file_in_iso(served, "/engine/root.img")
    disk = blank_disk(tmp_path / "laptop.img")
    with (
        server(export_dir) as srv,
        network_laptop(disk, tmp_path, "bios", export_dir, srv.port, "NET-BAD-1") as vm,
    ):
        SerialConsole(vm).boot_highlighted_entry(BOOT_TIMEOUT)
        wait_text(vm, r"THE NETWORK COPY IS DAMAGED: engine/root\.img", BOOT_TIMEOUT)
        time.sleep(15)  # the installer units would start right after a passing check
        serial_text = text_of(vm)
    assert f"on {HTTP_URL} (engine-iso netboot)" in serial_text
    assert "Nothing was installed and no disk was touched." in serial_text
    assert SCREEN1 not in serial_text and "Install Engine on this laptop" not in serial_text
    assert is_blank(disk)
