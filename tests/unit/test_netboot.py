"""Network boot without a network card: the PXE menu, DHCP text, URLs, the live side's view of
how it booted, answer-file URLs, HTTP errors and the lab server (on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path

import pytest

from engine_installer.base.errors import UserError
from engine_installer.iso import base
from engine_installer.iso.net import dhcp, export
from engine_installer.iso.net.serve import LabServer
from engine_installer.netboot import answers, fetch, live

MOUNTINFO_PMEM = (
    "22 1 0:21 / /run rw,nosuid - tmpfs tmpfs rw\n"
    "30 22 259:0 / /run/live/medium ro,noatime - iso9660 /dev/pmem0 ro\n"
)
MOUNTINFO_DVD = "30 22 11:0 / /run/live/medium ro,noatime - iso9660 /dev/sr0 ro\n"


# -- the export's PXE menu and DHCP settings -------------------------------------------------


def test_pxe_menu_loads_kernel_and_initrd_over_http_and_fetches_the_iso():
    url = export.base_url("http://192.168.1.5:8080/engine/5.0")
    menu = export.pxe_menu("b1d", "Engine 5.0 (build 50)", url, export.SiteArgs())
    assert "linux (http,192.168.1.5:8080)/engine/5.0/live/vmlinuz boot=live" in menu
    assert "initrd (http,192.168.1.5:8080)/engine/5.0/live/initrd.img" in menu
    assert "fetch=http://192.168.1.5:8080/engine/5.0/engine.iso" in menu
    assert "engine.netboot=http://192.168.1.5:8080/engine/5.0/" in menu
    assert "BOOTIF=01-${net_default_mac}" in menu
    assert "console=ttyS0,115200n8" in menu
    assert "autoinstall" not in menu  # unattended installs are opt-in
    loads = [line for line in menu.splitlines() if line.strip().startswith(("linux", "initrd"))]
    assert loads and all("(http," in line for line in loads)  # nothing big over TFTP


def test_uefi_pxe_menu_loads_kernel_and_initrd_over_tftp_and_fetches_the_iso_over_http():
    """Debian's signed network GRUB has no http module and may load none under Secure Boot."""
    url = export.base_url("http://192.168.1.5:8080/engine/5.0")
    site = export.SiteArgs("http://s/answers/{serial}.toml", "http://s/reports/")
    menu = export.pxe_menu("b1d", "Engine 5.0", url, site, signed_grub=True)
    assert "insmod" not in menu
    assert "linux (tftp)/live/vmlinuz boot=live" in menu
    assert "initrd (tftp)/live/initrd.img" in menu
    assert "fetch=http://192.168.1.5:8080/engine/5.0/engine.iso" in menu
    assert "engine.netboot=http://192.168.1.5:8080/engine/5.0/" in menu
    assert "'engine.autoinstall=http://s/answers/{serial}.toml'" in menu.split("menuentry")[2]
    assert "(http," not in menu


def test_pxe_menu_unattended_entry_is_opt_in_and_quoted():
    site = export.SiteArgs("http://s/answers/{serial}.toml", "http://s/reports/")
    menu = export.pxe_menu("b", "E", export.base_url("http://s/"), site)
    install, unattended = menu.split("menuentry")[1:]
    assert "engine.autoinstall" not in install
    assert "'engine.report=http://s/reports/'" in install
    assert "'engine.autoinstall=http://s/answers/{serial}.toml'" in unattended
    assert "set default=install" in menu
    menu = export.pxe_menu("b", "E", export.base_url("http://s/"), site, default="autoinstall")
    assert "set default=autoinstall" in menu


def test_without_url_grub_uses_its_tftp_server():
    url = export.base_url(None, port=8080)
    assert url.grub_device == "(http,${net_default_server}:8080)"
    assert not url.known
    assert export.base_url(None).url == "http://${net_default_server}/"
    text = dhcp.settings(url)
    assert "Replace SERVER" in text


@pytest.mark.parametrize(
    "bad", ["https://s/", "ftp://s/", "http:///x", "http://s/a b", "http://s:99999/", "s/x"]
)
def test_bad_urls_are_one_clear_line(bad):
    with pytest.raises(UserError, match="--url"):
        export.base_url(bad)


def test_dhcp_settings_for_isc_and_dnsmasq():
    text = dhcp.settings(export.base_url("http://10.1.2.3/"))
    assert 'filename "http://10.1.2.3/engine.iso";' in text
    assert 'option vendor-class-identifier "HTTPClient";' in text
    assert "next-server 10.1.2.3;" in text and 'filename "boot/grub/i386-pc/core.0";' in text
    assert "dhcp-boot=tag:httpboot,http://10.1.2.3/engine.iso" in text
    assert "dhcp-option-force=tag:httpboot,60,HTTPClient" in text
    assert "dhcp-boot=tag:bios,boot/grub/i386-pc/core.0,,10.1.2.3" in text
    # UEFI PXE (client architectures 7 and 9): shim over TFTP.
    assert "elsif option arch = 00:07 or option arch = 00:09 {" in text
    assert 'filename "uefi/shimx64.efi";' in text
    assert "dhcp-match=set:efi64,option:client-arch,7" in text
    assert "dhcp-match=set:efi64,option:client-arch,9" in text
    assert "dhcp-boot=tag:efi64,uefi/shimx64.efi,,10.1.2.3" in text


def test_site_arguments_for_uefi_http_follow_the_menu_default():
    site = export.SiteArgs("http://s/a/{mac}.toml", "http://s/r/")
    assert site.arguments(unattended=False) == ["engine.report=http://s/r/"]
    assert site.arguments(unattended=True)[0] == "engine.autoinstall=http://s/a/{mac}.toml"


def test_export_refuses_bad_input_before_writing(tmp_path):
    iso = tmp_path / "engine.iso"
    iso.write_bytes(b"\0" * 4096)
    out = tmp_path / "out"
    with pytest.raises(UserError, match="--menu-default autoinstall needs --autoinstall"):
        export.export(iso, out, menu_default="autoinstall")
    with pytest.raises(UserError, match="--report"):
        export.export(iso, out, site=export.SiteArgs(report="ftp://x/"))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine.txt").write_text("keep me")
    with pytest.raises(UserError, match="not empty"):
        export.export(iso, tmp_path / "busy")
    assert not out.exists()
    with pytest.raises(UserError, match="not a network boot export"):
        export.load_info(tmp_path / "busy")


# -- the live side: how did this laptop boot? ----------------------------------------------


def test_boot_kind():
    assert live.boot_kind("boot=live engine.netboot=http://s/ quiet", MOUNTINFO_DVD) == "pxe"
    assert live.boot_kind("boot=live quiet", MOUNTINFO_PMEM) == "uefi-http"
    assert live.boot_kind("boot=live quiet", MOUNTINFO_DVD) is None
    assert live.medium_source(MOUNTINFO_PMEM) == "/dev/pmem0"


def test_ipconfig_lease_file():
    text = (
        "DEVICE='enp0s2'\nPROTO='dhcp'\nIPV4ADDR='10.0.2.15'\nROOTSERVER='10.0.2.2'\n"
        "filename='http://10.0.2.100/engine/engine.iso'\nDNSDOMAIN=''\n"
    )
    lease = live.parse_net_conf(text)
    assert lease["DEVICE"] == "enp0s2" and lease["IPV4ADDR"] == "10.0.2.15"
    assert lease["filename"] == "http://10.0.2.100/engine/engine.iso"
    assert lease["DNSDOMAIN"] == ""


EFIBOOTMGR = (  # efibootmgr -v after OVMF's HTTP boot
    "BootCurrent: 0004\nTimeout: 0 seconds\nBootOrder: 0004,0001\n"
    "Boot0001* UEFI QEMU HARDDISK QM00001 \tPciRoot(0x0)/Pci(0x1f,0x2)/Sata(0,65535,0)\n"
    "Boot0004* UEFI HTTPv4 (MAC:525400123456)\tPciRoot(0x0)/Pci(0x2,0x0)/MAC(525400123456,1)"
    "/IPv4(0.0.0.0,0,DHCP,0.0.0.0,0.0.0.0,0.0.0.0)/Uri(){auto_created_boot_option}\n"
)


def test_the_card_and_url_the_firmware_booted():
    assert live.firmware_boot_entry(EFIBOOTMGR) == ("52:54:00:12:34:56", "")
    typed = EFIBOOTMGR.replace("/Uri()", "/Uri(http://10.1.1.1/e/engine.iso)")
    assert live.firmware_boot_entry(typed) == ("52:54:00:12:34:56", "http://10.1.1.1/e/engine.iso")
    assert live.firmware_boot_entry("BootCurrent: 0009\n") == ("", "")
    assert live.firmware_boot_entry("") == ("", "")


def test_describe_and_state_file(tmp_path):
    boot = live.NetBoot("pxe", "http://s/", interface="enp0s2", mac="52:54:00:12:34:56",
                        address="10.0.2.15")  # fmt: skip
    assert boot.describe() == (
        "Booted from the network (PXE) from http://s/; enp0s2 52:54:00:12:34:56 10.0.2.15"
    )
    state = tmp_path / "netboot.json"
    live.save(boot, state)
    assert live.current(state) == boot
    live.save(None, state)
    assert live.current(state) is None
    assert live.current(tmp_path / "absent.json") is None
    broken = live.NetBoot("uefi-http", problem="no network address (DHCP did not answer)")
    assert broken.describe().endswith("; no network address (DHCP did not answer)")


def test_boot_arguments_take_over_site_settings_and_the_command_line_wins():
    boot = live.NetBoot("uefi-http", site_args=["engine.autoinstall=http://s/{serial}.toml"])
    args = live.boot_arguments("boot=live quiet", boot)
    from engine_installer.autoinstall import autoinstall_value

    assert autoinstall_value(args) == "http://s/{serial}.toml"
    args = live.boot_arguments("boot=live engine.autoinstall=http://t/x.toml", boot)
    assert autoinstall_value(args) == "http://t/x.toml"
    assert live.boot_arguments("boot=live", live.NetBoot("pxe")) == "boot=live"


def run_generator(tmp_path: Path, cmdline: str, mounts: str) -> tuple[set[str], Path]:
    generator = base.recipe_dir() / "overlay/usr/lib/systemd/system-generators"
    (tmp_path / "cmdline").write_text(cmdline + "\n")
    (tmp_path / "mounts").write_text(mounts)
    normal = tmp_path / "normal"
    env = dict(os.environ, ENGINE_CMDLINE=str(tmp_path / "cmdline"),
               ENGINE_MOUNTS=str(tmp_path / "mounts"))  # fmt: skip
    script = generator / "engine-installer-generator"
    dirs = [str(normal), str(tmp_path / "early"), str(tmp_path / "late")]
    subprocess.run(["sh", str(script), *dirs], check=True, env=env)
    started = {p.name for p in (normal / "multi-user.target.wants").iterdir()}
    return started, normal / "engine-checkmedia.service.d" / "network.conf"


@pytest.mark.parametrize(
    ("cmdline", "mounts", "netboot"),
    [
        ("boot=live engine.netboot=http://s/", "", True),
        ("boot=live", "/dev/pmem0 /run/live/medium iso9660 ro 0 0\n", True),
        ("boot=live", "/dev/sr0 /run/live/medium iso9660 ro 0 0\n", False),
    ],
)
def test_generator_sets_up_network_boots_and_always_checks_their_medium(
    tmp_path, cmdline, mounts, netboot
):
    started, dropin = run_generator(tmp_path, cmdline, mounts)
    assert ("engine-netboot.service" in started) is netboot
    assert dropin.exists() is netboot
    if netboot:
        assert "ConditionKernelCommandLine=\n" in dropin.read_text()


# -- answer files per laptop ------------------------------------------------------------------


def test_candidate_urls():
    template = "http://s/answers/{serial}.toml"
    assert answers.candidate_urls(template, "PF 12/3", "") == [
        "http://s/answers/PF%2012%2F3.toml",
        "http://s/answers/default.toml",
    ]
    assert answers.candidate_urls(template, "", "") == ["http://s/answers/default.toml"]
    assert answers.candidate_urls("http://s/{mac}", "x", "52:54:00:AB:CD:EF") == [
        "http://s/52-54-00-ab-cd-ef",
        "http://s/default",
    ]
    assert answers.candidate_urls("http://s/all.toml", "x", "y") == ["http://s/all.toml"]


def test_machine_serial_ignores_firmware_placeholders(tmp_path):
    path = tmp_path / "product_serial"
    placeholders = ("To be filled by O.E.M.", "Default string", "0", "", "System Serial Number")
    for placeholder in placeholders:
        path.write_text(placeholder + "\n")
        assert answers.machine_serial(path) == ""
    path.write_text("PF1ABCDE\n")
    assert answers.machine_serial(path) == "PF1ABCDE"


@pytest.fixture()
def web(tmp_path):
    root = tmp_path / "www"
    (root / "answers").mkdir(parents=True)
    with LabServer(root, bind="127.0.0.1", port=0, tftp_port=None, say=lambda _m: None) as srv:
        yield root, f"http://127.0.0.1:{srv.port}"


def test_fetch_answers_own_then_default(web):
    root, url = web
    template = url + "/answers/{serial}.toml"
    (root / "answers" / "default.toml").write_text("default\n")
    data, where = answers.fetch_answers(template, "SN1", "", tries=1)
    assert (data, where) == (b"default\n", url + "/answers/default.toml")
    (root / "answers" / "SN1.toml").write_text("mine\n")
    assert answers.fetch_answers(template, "SN1", "", tries=1)[0] == b"mine\n"


def test_fetch_answers_missing_names_every_url(web):
    _root, url = web
    with pytest.raises(UserError) as err:
        answers.fetch_answers(url + "/answers/{serial}.toml", "SN9", "", tries=1)
    message = str(err.value)
    assert "serial SN9" in message and "404" in message
    assert "/answers/SN9.toml" in message and "/answers/default.toml" in message


def test_fetch_server_down_is_clear_and_retried():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    waits = []
    with pytest.raises(fetch.FetchError, match="refused the connection") as err:
        fetch.fetch_bytes(f"http://127.0.0.1:{port}/a.toml", what="the answer file",
                          tries=3, sleep=waits.append)  # fmt: skip
    assert err.value.status == 0 and len(waits) == 2
    with pytest.raises(UserError, match="refused the connection"):
        answers.fetch_answers(f"http://127.0.0.1:{port}/{{serial}}.toml", "S", "", tries=1)


# -- the lab server -----------------------------------------------------------------------------


def test_lab_server_serves_files_takes_reports_and_speaks_tftp(tmp_path):
    import tftpy

    root = tmp_path / "export"
    (root / "boot" / "grub").mkdir(parents=True)
    (root / "boot" / "grub" / "grub.cfg").write_text("menu\n")
    (root / "engine.iso").write_bytes(b"iso" * 1000)
    with LabServer(root, bind="127.0.0.1", port=0, tftp_port=0, say=lambda _m: None) as srv:
        base_url = f"http://127.0.0.1:{srv.port}"
        with urllib.request.urlopen(base_url + "/engine.iso") as response:
            assert response.read() == b"iso" * 1000
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base_url + "/boot/")
        assert err.value.code == 403  # no directory listings
        fetch.post_json(base_url + "/reports/", {"machine": {"serial": "SN/1"}}, tries=1)
        reports = list((root / "reports").glob("*.json"))
        assert len(reports) == 1 and reports[0].name.startswith("SN_1-")
        assert json.loads(reports[0].read_text()) == {"machine": {"serial": "SN/1"}}
        client = tftpy.TftpClient("127.0.0.1", srv.tftp_port)
        client.download("boot/grub/grub.cfg", str(tmp_path / "got.cfg"))
        assert (tmp_path / "got.cfg").read_text() == "menu\n"
        with pytest.raises(Exception):  # noqa: B017 - tftpy's own exception types vary
            client.upload("evil.txt", str(tmp_path / "got.cfg"))
    assert not (root / "evil.txt").exists()


# -- engine.autoinstall=http://...: a failed fetch stops, never installs --------------------


class _Keyboard:
    """A console where the technician presses Enter."""

    def isatty(self) -> bool:
        return True

    def readline(self) -> str:
        return "\n"


def test_unattended_stops_when_the_answer_file_cannot_be_fetched(tmp_path, monkeypatch, capsys):
    import engine_installer.autoinstall as auto

    for name in ("LOCK", "COPY", "DONE", "STOPPED"):
        monkeypatch.setattr(auto, name, tmp_path / name.lower())
    monkeypatch.setenv("ENGINE_INSTALLER_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setattr(
        "engine_installer.netboot.live.boot_arguments",
        lambda: "boot=live engine.autoinstall=http://127.0.0.1:9/answers/{serial}.toml",
    )

    def no_answers(value):
        raise UserError(f"no answer file for this laptop: {value} answered 404 Not Found")

    monkeypatch.setattr(auto, "_fetch_remote", no_answers)
    calls = []
    monkeypatch.setattr("engine_installer.cli.main", lambda argv: calls.append(argv) or 0)
    monkeypatch.setattr("sys.stdin", _Keyboard())
    assert auto.main(["--ascii"]) == 0
    out = capsys.readouterr().out
    assert "Unattended install stopped: no answer file for this laptop" in out
    assert "Nothing was installed and no disk was touched." in out
    assert calls == [["--ascii"]]  # Enter: the screens, never --answers
    assert (tmp_path / "done").exists() and "404" in (tmp_path / "stopped").read_text()
    # The console unit restarts the installer: it never tries the unattended run again.
    calls.clear()
    assert auto.main(["--ascii"]) == 0
    assert calls == [["--ascii"]]
