"""Network boot in QEMU (TCG): the installer ISO exported by `engine-iso netboot`, served by the
lab server on 127.0.0.1 (HTTP; QEMU's own TFTP serves GRUB), reached by the guest only through
user-mode networking with restrict=on (qemu/network.py).

- BIOS PXE (SeaBIOS + iPXE ROM → GRUB over TFTP → kernel, initrd and ISO over HTTP) and UEFI
  HTTP boot (OVMF loads the whole ISO into a RAM disk) each run one fresh unattended install
  from a per-serial answer file; the report arrives at the server; screen 1 then says the laptop
  booted from the network; the disk boots the installed Engine.
- Bad cases (BIOS PXE, the quicker boot): no answer file (404), the answer server down, and a
  payload that no longer matches its hashes on the server: a clear message, nothing written.
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
TIMES: dict[str, float] = {}


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


def network_laptop(
    disk: Path, tmp: Path, firmware: str, export_dir: Path, port: int, serial: str, **forwards
):
    """A laptop whose firmware boots from its network card; its DMI serial is `serial`."""
    args = boot_network(firmware, http_port=port, tftp=export_dir, **forwards)
    return laptop(
        disk, firmware=firmware, workdir=tmp / "vm", extra_args=args + smbios_serial(serial)
    )


def wait_for_report(directory: Path, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reports = sorted((directory / "reports").glob("*.json"))
        if reports:
            return json.loads(reports[-1].read_text())
        time.sleep(1)
    raise AssertionError(f"no install report reached the server within {timeout:.0f} s")


def clean(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


# -- one fresh unattended network install per firmware -----------------------------------------

KINDS = {"bios": "PXE", "uefi": "UEFI HTTP boot"}


@pytest.mark.parametrize(
    "firmware",
    [
        pytest.param("bios", marks=pytest.mark.cell("network unattended install, BIOS PXE")),
        pytest.param("uefi", marks=pytest.mark.cell("network unattended install, UEFI HTTP")),
    ],
)
def test_unattended_network_install(installer_iso, tmp_path, firmware):
    export_dir = make_export(installer_iso, tmp_path / "export", unattended=True)
    serial = f"NET-{firmware.upper()}-1"
    # Only this laptop's own file: no default, so a wrong {serial} would stop the install.
    answer_file(export_dir / "answers" / f"{serial}.toml", "/dev/sda", None, action="install")
    disk = blank_disk(tmp_path / "laptop.img")
    started = time.monotonic()
    with (
        server(export_dir) as srv,
        network_laptop(disk, tmp_path, firmware, export_dir, srv.port, serial) as vm,
    ):
        console = SerialConsole(vm)
        vm.wait_for(r"Unattended install finished|unattended install has finished",
                    timeout=BOOT_TIMEOUT + INSTALL_TIMEOUT)  # fmt: skip
        report = wait_for_report(export_dir)
        # The console's unit comes back with the screens: screen 1 says where it booted from.
        screen = console.wait_for(SCREEN1, timeout=300)
        serial_text = clean(vm.serial_text())
    TIMES[firmware] = time.monotonic() - started
    print(f"\n{firmware}: unattended network install + report in {TIMES[firmware]:.0f} s")
    assert f"Booted from the network ({KINDS[firmware]}) from {HTTP_URL}" in serial_text
    assert "Booted from the network" in screen
    assert f"answers from {HTTP_URL}answers/{serial}.toml" in serial_text or (
        "unattended install has finished" in serial_text
    )
    assert "intact; starting the installer" in serial_text  # the downloaded medium was checked
    assert report["status"] == "installed" and report["machine"]["serial"] == serial
    assert report["machine"]["mac"] == "52:54:00:12:34:56"
    result = report["result"]
    assert (result["action"], result["version"], result["slot"]) == ("install", "5.0", "A")
    assert result["disk"]["path"] == "/dev/sda" and "QEMU HARDDISK" in result["disk"]["model"]
    groups, _ = boot_installed_disk(disk, tmp_path / "disk-boot", firmware=firmware)
    assert groups[:3] == ("5.0", result["build"], "A")


# -- bad cases: a clear message, nothing written ------------------------------------------------


@pytest.mark.cell("network bad case: no answer file (404), BIOS PXE")
def test_missing_answer_file_stops_and_writes_nothing(installer_iso, tmp_path):
    export_dir = make_export(installer_iso, tmp_path / "export", unattended=True)
    disk = blank_disk(tmp_path / "laptop.img")
    with (
        server(export_dir) as srv,
        network_laptop(disk, tmp_path, "bios", export_dir, srv.port, "NET-404-1") as vm,
    ):
        console = SerialConsole(vm)
        vm.wait_for(r"Unattended install stopped: .*", timeout=BOOT_TIMEOUT)
        report = wait_for_report(export_dir)
        # The technician may carry on by hand: Enter opens the screens; on a network boot the
        # target list names the laptop's disk and no "boot medium" that does not exist.
        console.wait_for("Press Enter for the installer's screens", timeout=60)
        console.press("enter")
        console.wait_for(SCREEN1, timeout=120)
        console.press("enter")
        console.wait_for("2/5 Welcome")
        console.press("enter")
        console.wait_for("3/5 Licence agreement")
        console.press("tab", "enter")
        console.wait_for("4/5 Keyboard layout")
        console.press("enter")
        targets = console.wait_for("5/5 Target disk", timeout=300)
        serial_text = clean(vm.serial_text())
    stop = re.search(r"Unattended install stopped: [^\n]*", serial_text).group(0)
    assert "no answer file for this laptop (serial NET-404-1" in stop
    assert "answers/NET-404-1.toml: the server answered 404" in stop
    assert "answers/default.toml: the server answered 404" in stop
    assert "Nothing was installed and no disk was touched." in serial_text
    assert report["status"] == "failed" and "404" in report["error"]
    assert "/dev/sda" in targets and "QEMU HARDDISK" in targets
    assert "boot medium" not in targets and "/dev/loop" not in targets
    assert is_blank(disk)


@pytest.mark.cell("network bad case: answer server down, BIOS PXE")
def test_answer_server_down_stops_and_writes_nothing(installer_iso, tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    answers = "http://10.0.2.100:81/answers/{serial}.toml"
    export_dir = make_export(installer_iso, tmp_path / "export", autoinstall=answers,
                             unattended=True)  # fmt: skip
    disk = blank_disk(tmp_path / "laptop.img")
    down = {"extra_forwards": {81: closed}}
    with (
        server(export_dir) as srv,
        network_laptop(disk, tmp_path, "bios", export_dir, srv.port, "NET-DOWN-1", **down) as vm,
    ):
        vm.wait_for(r"Unattended install stopped: .*", timeout=BOOT_TIMEOUT)
        time.sleep(5)
        serial_text = clean(vm.serial_text())
    stop = re.search(r"Unattended install stopped: [^\n]*", serial_text).group(0)
    assert "http://10.0.2.100:81/answers/NET-DOWN-1.toml" in stop
    assert "closed the connection" in stop or "refused" in stop or "timed out" in stop
    assert "default.toml" not in stop  # the server is down: no point asking for the default
    assert "Unattended install: answers from" not in serial_text
    assert is_blank(disk)


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
        vm.wait_for(r"THE NETWORK COPY IS DAMAGED: engine/root\.img", timeout=BOOT_TIMEOUT)
        time.sleep(15)  # the installer units would start right after a passing check
        serial_text = clean(vm.serial_text())
    assert f"on {HTTP_URL} (engine-iso netboot)" in serial_text
    assert "Nothing was installed and no disk was touched." in serial_text
    assert SCREEN1 not in serial_text and "Install Engine on this laptop" not in serial_text
    assert is_blank(disk)
