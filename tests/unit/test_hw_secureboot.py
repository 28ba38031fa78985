"""Secure Boot in hw-check and on the welcome screen: probed from the firmware variable, and a
clear fail naming the model's firmware menu when the medium's Engine cannot boot with it on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine_installer.hw.check import FAIL, PASS, check_machine
from engine_installer.hw.profiles import ENV_VAR, load_profiles
from engine_installer.hw.synth import snapshot_for_profile
from engine_installer.install.plan import Plan
from engine_installer.machine.hardware import SECURE_BOOT_VAR, probe_secure_boot
from engine_installer.ondisk.payload import load_manifest
from engine_installer.tui.app import InstallerApp
from engine_installer.tui.simulated import SimulatedBackend
from tests.iso_helpers import fake_payload

REPO = Path(__file__).resolve().parents[2]
PROFILES = REPO / "hw-profiles"
BY_ID = {p.id: p for p in load_profiles(PROFILES)}
SETTING = "Boot Configuration > Secure Boot > Enable Secure Boot: Off"


def sysfs(tmp_path: Path, value: int | None, efi: bool = True) -> Path:
    if efi:
        (tmp_path / "sys/firmware/efi/efivars").mkdir(parents=True)
    if value is not None:
        (tmp_path / SECURE_BOOT_VAR).write_bytes(b"\x06\x00\x00\x00" + bytes([value]))
    return tmp_path


def test_probe_reads_the_secureboot_variable(tmp_path):
    assert probe_secure_boot(sysfs(tmp_path / "on", 1)) == "on"
    assert probe_secure_boot(sysfs(tmp_path / "off", 0)) == "off"
    assert probe_secure_boot(sysfs(tmp_path / "novar", None)) == "off"
    assert probe_secure_boot(sysfs(tmp_path / "bios", None, efi=False)) == "unsupported"


def media(tmp_path: Path, secure_boot: bool | None, version: str = "4.5"):
    """A manifest whose secure_boot field says what its Engine boots with."""
    from dataclasses import replace

    manifest = load_manifest(fake_payload(tmp_path / f"payload-{version}", version=version))
    return replace(manifest, secure_boot=secure_boot)


def item(report, name="secure-boot"):
    (found,) = [i for i in report.items if i.name == name]
    return found


def test_secure_boot_on_with_an_engine_that_cannot_boot_with_it_fails_with_the_menu_path(tmp_path):
    snap = snapshot_for_profile(BY_ID["dell-latitude-7440"], secure_boot="on")
    report = check_machine(snap, PROFILES, media(tmp_path, False))
    sb = item(report)
    assert report.verdict == FAIL and sb.status == FAIL
    assert sb.message == (
        "Secure Boot is on, and Engine 4.5 (build 7) cannot boot with it: set "
        f"'{SETTING}' in the firmware setup (F2 at power-on), then boot the medium again"
    )
    assert report.secure_boot == "on"


@pytest.mark.parametrize(
    ("state", "engine_sb", "message"),
    [
        ("on", True, "Secure Boot is on; Engine 5.0 (build 7) boots with it"),
        ("on", None, "Secure Boot is on"),
        ("off", True, "Secure Boot is off; Engine 5.0 (build 7) also boots with it on"),
        ("off", False, "Secure Boot is off"),
    ],
)
def test_secure_boot_states_that_pass(tmp_path, state, engine_sb, message):
    snap = snapshot_for_profile(BY_ID["lenovo-thinkpad-x1-carbon-gen11"], secure_boot=state)
    report = check_machine(snap, PROFILES, media(tmp_path, engine_sb, "5.0"))
    assert (item(report).status, item(report).message) == (PASS, message)
    assert report.verdict == PASS


def test_bios_boot_reports_unsupported_and_an_unknown_model_gets_the_generic_path(tmp_path):
    bios = snapshot_for_profile(BY_ID["dell-latitude-e6420"])
    assert item(check_machine(bios, PROFILES, media(tmp_path, False))).message == (
        "Secure Boot: unsupported (legacy BIOS boot)"
    )
    unknown = snapshot_for_profile(BY_ID["dell-latitude-7440"], secure_boot="on")
    unknown.dmi = {"sys_vendor": "Acme", "product_name": "Laptop 1"}
    sb = item(check_machine(unknown, PROFILES, media(tmp_path, False)))
    assert sb.status == FAIL and "'Secure Boot (under Boot or Security): Disabled'" in sb.message


def test_recorded_machine_without_the_field_gets_no_secure_boot_item():
    snap = snapshot_for_profile(BY_ID["dell-latitude-7440"])
    snap.secure_boot = ""
    assert not [i for i in check_machine(snap, PROFILES).items if i.name == "secure-boot"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    return subprocess.run([sys.executable, "-m", "engine_installer", *args], cwd=REPO,
                          env=dict(env, PYTHONPATH=str(REPO)), capture_output=True, text=True,
                          timeout=60)  # fmt: skip


def test_hw_check_fails_for_a_payload_without_secure_boot_support(tmp_path):
    snap = tmp_path / "x1.json"
    snapshot_for_profile(BY_ID["lenovo-thinkpad-x1-carbon-gen11"], secure_boot="on").save(snap)
    payload = fake_payload(tmp_path / "payload", version="4.5")  # no boot chain: cannot
    done = run_cli("hw-check", "--profile", str(snap), "--source", str(payload))
    assert done.returncode == 1, done.stderr
    assert (
        "FAIL  secure-boot Secure Boot is on, and Engine 4.5 (build 7) cannot boot" in done.stdout
    )
    assert "'Security > Secure Boot > Secure Boot: Off' in the firmware setup" in done.stdout
    report = json.loads(run_cli("--profile", str(snap), "hw-check", "--json").stdout)
    assert report["secure_boot"] == "on" and report["verdict"] == "pass"  # no medium: no verdict


def test_welcome_screen_shows_secure_boot_and_blocks_an_engine_that_cannot_boot(tmp_path):
    snap = snapshot_for_profile(BY_ID["qemu-q35-ovmf"], secure_boot="on")
    payload = fake_payload(tmp_path / "payload", version="4.5")
    backend = SimulatedBackend(snap, payload, tmp_path / "installer.log")
    app = InstallerApp(backend, Plan(), threaded=False)
    app.start()
    app.screen.widget.keypress((76, 20), "enter")  # Install Engine → welcome
    # The screen as drawn (its lines joined: the check's text wraps at 80 columns).
    rows = [row.decode() for row in app.top.render((80, 50), focus=True).text]
    screen = " ".join(" ".join(row.strip(" │").split()) for row in rows)
    assert "Secure Boot: on" in screen
    assert "Secure Boot is on, and Engine 4.5 (build 7) cannot boot with it" in screen
    assert "Attempt Secure Boot" in screen  # the setting to change, named in full
    assert app.screen.blocked_reason() == "secure-boot"  # Continue is blocked by that check


def test_the_variable_is_the_uefi_global_secureboot_and_the_sample_engine_reads_the_same():
    # EFI_GLOBAL_VARIABLE, UEFI specification 2.x section 3.3.
    assert SECURE_BOOT_VAR.endswith("/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c")
    engine_init = (REPO / "iso-build/sample-engine/engine-init").read_text()
    assert SECURE_BOOT_VAR.rsplit("/", 1)[1] in engine_init
