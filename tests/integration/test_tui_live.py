"""The text UI with the LIVE backend on a real loop disk: probe, detect, run_plan, done screen.

Needs the disk backend (engine_installer.disks, tests/integration/conftest.py) and root. The
TUI is restricted to the test's own loop device (ENGINE_INSTALLER_DISKS), loadkeys is a stub
that records its arguments, and Reboot is skipped because this is not the live system.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

pytest.importorskip("engine_installer.install.runner")

from diskhelpers import add_vms, engine_installer, marker, write_answers  # noqa: E402

from tests.tui_term import Term  # noqa: E402

pytestmark = pytest.mark.root


def live_term(tmp_path: Path, disk: str, source: Path, log_dir: Path) -> Term:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "loadkeys"
    stub.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/loadkeys.args\n')
    stub.chmod(0o755)
    env = {
        "ENGINE_INSTALLER_DISKS": disk,
        "ENGINE_INSTALLER_LOG_DIR": str(log_dir),
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
    }
    term = Term("", tmp_path / "unused.log", "--source", str(source), live=True, env=env)
    term.wait_for("1/5 Install choice", timeout=20)
    return term


def through_keyboard(term: Term) -> None:
    term.press("enter")
    term.wait_for("2/5 Welcome")
    deadline = time.monotonic() + 30
    while "Compatibility" not in term.text() and time.monotonic() < deadline:
        term.pump(0.2)
    if "FAIL" in term.text():  # a build machine is no supported laptop: the logged override
        term.press("up", "space", "down", "right")  # back on Continue
    term.press("enter")
    term.wait_for("3/5 Licence agreement")
    term.press("tab", "enter")
    term.wait_for("4/5 Keyboard layout")
    term.press("enter")  # us


def test_live_upgrade_through_the_tui(make_loop, payloads, tmp_path, log_dir):
    disk = make_loop()
    answers = write_answers(tmp_path / "install.toml", disk, payloads["4.5"], action="auto")
    assert engine_installer("--answers", str(answers)).returncode == 0
    add_vms(disk, {"web": ("shared", "4.5"), "build": ("custom", "4.5"), "desk": ("local", "4.5")})

    term = live_term(tmp_path, disk, payloads["5.0"], log_dir)
    try:
        through_keyboard(term)
        screen = term.wait_for("An Engine installation was found", timeout=60)
        assert "Engine 4.5 (build 45), can be upgraded" in screen
        assert "VMs on disk: 3 (PV drivers; this medium brings 5.0)" in screen
        term.wait_focused("< Upgrade >")
        term.press("enter")
        term.wait_for("the VMs and data on " + disk + " are kept")
        term.press("tab", "enter")
        screen = term.wait_for(f"Upgraded {disk} to Engine 5.0 (build 50)", timeout=180)
        assert "build (custom, PV 4.5.0)" in screen and "desk (local, PV 4.5.0)" in screen
        assert "web" not in screen
        term.press("enter")  # Reboot: skipped, this is not the live system
        status, last = term.finish(timeout=20)
    finally:
        term.close()
    assert status == 0 and "reboot skipped" in last
    mark = marker(disk)
    assert (mark["version"], mark["slot"]) == ("5.0", "B")
    assert (tmp_path / "loadkeys.args").read_text().split() == ["us"]
    logs = list(log_dir.glob("install-*.log"))
    assert logs and "confirmed plan: action=upgrade" in logs[0].read_text()


def test_live_fresh_install_through_the_tui(make_loop, payloads, tmp_path, log_dir):
    disk = make_loop()
    term = live_term(tmp_path, disk, payloads["5.0"], log_dir)
    try:
        through_keyboard(term)
        term.wait_for("5/5 Target disk", timeout=60)
        term.wait_focused(disk)
        term.press("enter")
        term.wait_for(f"ALL DATA ON {disk} WILL BE ERASED")
        term.press("tab", "enter")
        term.wait_for(f"Installed Engine 5.0 (build 50) on {disk}", timeout=180)
        term.press("tab", "enter")  # Power off: skipped
        status, last = term.finish(timeout=20)
    finally:
        term.close()
    assert status == 0 and "poweroff skipped" in last
    mark = marker(disk)
    assert (mark["version"], mark["slot"]) == ("5.0", "A")
