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

from diskhelpers import (  # noqa: E402
    add_vms,
    engine_installer,
    marker,
    slot_options,
    write_answers,
)

from tests.tui_term import Term  # noqa: E402

pytestmark = pytest.mark.root


def live_term(tmp_path: Path, disk: str, source: Path, log_dir: Path, lang: str = "en") -> Term:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "loadkeys"
    stub.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/loadkeys.args\n')
    stub.chmod(0o755)
    env = {
        "ENGINE_INSTALLER_DISKS": disk,
        "ENGINE_INSTALLER_LOG_DIR": str(log_dir),
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "ENGINE_INSTALLER_LANG": lang,
    }
    term = Term("", tmp_path / "unused.log", "--source", str(source), live=True, env=env)
    term.wait_for("1/5 ", timeout=20)
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
        assert "3 VMs on disk (PV drivers; this medium brings 5.0):" in screen
        term.wait_focused("> Upgrade <")
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


def test_live_fresh_install_in_japanese_keeps_jp106(make_loop, payloads, tmp_path, log_dir):
    """Japanese screens, the keyboard found by typing 「日本」: jp106 is applied on the
    console (loadkeys) and is what the installed Engine boots with."""
    disk = make_loop()
    term = live_term(tmp_path, disk, payloads["5.0"], log_dir, lang="ja")
    try:
        term.wait_for("Engine をインストールする")
        term.press("enter")
        term.wait_for("2/5 ようこそ")
        deadline = time.monotonic() + 30
        while "互換性" not in term.text() and time.monotonic() < deadline:
            term.pump(0.2)
        if "不合格" in term.text():  # a build machine is no supported laptop
            term.press("up", "space", "down")
        term.press("enter")
        term.wait_for("3/5 使用許諾契約")
        term.press("tab", "enter")
        term.wait_for("4/5 キーボードレイアウト")
        term.type("日本")
        term.wait_focused("日本語 (106/109 キー)")
        term.press("enter")
        term.wait_for("5/5 インストール先のディスク", timeout=60)
        term.wait_focused(disk)
        term.press("enter")
        screen = term.wait_for(f"{disk} のデータはすべて消去されます。")
        assert "jp106" in screen
        term.press("tab", "enter")
        term.wait_for("インストールしました", timeout=180)
        term.press("tab", "enter")  # 電源を切る: skipped, this is not the live system
        status, _last = term.finish(timeout=20)
    finally:
        term.close()
    assert status == 0
    mark = marker(disk)
    assert (mark["version"], mark["slot"]) == ("5.0", "A")
    assert (tmp_path / "loadkeys.args").read_text().split() == ["jp106"]
    assert slot_options(disk, "A")["engine_keymap"] == "jp106"
    logs = list(log_dir.glob("install-*.log"))
    assert (
        logs and "手順 5/12: Engine 5.0 (ビルド 50) をスロット A に書き込み" in logs[0].read_text()
    )
