"""Whole runs of the real `engine-installer --dry-run` in an 80x24 pseudo-terminal.

Keys are typed as a technician would; assertions read the emulated screen (pyte).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.tui_term import Term


@pytest.fixture
def run(tmp_path: Path):
    terms: list[Term] = []

    def start(machine: str, *extra: str, env: dict[str, str] | None = None) -> Term:
        term = Term(machine, tmp_path / "installer.log", *extra, env=env)
        terms.append(term)
        term.wait_for("1/5 ", timeout=40)  # screen 1, in whichever language
        return term

    yield start
    for term in terms:
        term.close()


def through_keyboard(term: Term, layout: str = "") -> None:
    term.wait_focused("Install Engine")
    term.press("enter")
    term.wait_for("Welcome to the Engine 5.0 (build 5021) installer")
    term.wait_focused("> Continue <")
    term.press("enter")
    term.wait_for("3/5 Licence agreement")
    term.wait_focused("> Back <")
    term.press("pgdn", "tab")
    term.wait_focused("> Accept <")
    term.press("enter")
    term.wait_for("4/5 Keyboard layout")
    if layout:
        term.type(layout)
        term.wait_for(f"Search: {layout}")
    term.press("enter")


def confirm(term: Term, button: str) -> None:
    term.wait_focused("> Back <")  # the summary's safe default
    term.press("tab")
    term.wait_focused(f"> {button} <")
    term.press("enter")


def test_fresh_install(run) -> None:
    term = run("empty-disk")
    through_keyboard(term, "gb")
    screen = term.wait_for("5/5 Target disk")
    assert "No Engine installation was found" in screen
    assert "not offered: /dev/sda is the boot medium the installer runs from." in screen
    term.wait_focused("/dev/nvme0n1")
    term.press("enter")
    screen = term.wait_for("Summary")
    assert "ALL DATA ON /dev/nvme0n1 WILL BE ERASED" in screen
    assert "Keyboard:     gb" in screen
    assert "Step 1 of 12: Partitioning /dev/nvme0n1" in screen
    confirm(term, "Install Engine")
    term.wait_for("Installing Engine 5.0 (build 5021) on /dev/nvme0n1")
    screen = term.wait_for("Installed Engine 5.0 (build 5021) on /dev/nvme0n1")
    assert "Remove the installation media" in screen
    term.wait_focused("> Reboot <")
    term.press("enter")
    status, last = term.finish()
    assert status == 0 and last.startswith("dry-run: would reboot")
    log = term.log.read_text()
    assert "dry-run: would run loadkeys gb" in log
    assert "confirmed plan: action=install target=/dev/nvme0n1 keyboard=gb" in log


def test_upgrade_lists_vms_needing_pv_upgrade(run) -> None:
    term = run("engine-4.5", env={"ENGINE_INSTALLER_SIM_DETECT_SECONDS": "2"})
    through_keyboard(term)
    term.wait_for("Looking for existing Engine installations", timeout=5)
    # The UI stays alive while detection runs: the spinner keeps turning.
    frames = set()
    for _ in range(4):
        frames.add(term.text().split("Looking for")[0].split()[-1])
        time.sleep(0.2)
        term.pump()
    assert len(frames) > 1
    screen = term.wait_for("An Engine installation was found")
    assert "Engine 4.5 (build 4512), can be upgraded" in screen
    assert "2024-03-14 10:22 UTC" in screen
    assert "This medium:  Engine 5.0 (build 5021)" in screen
    assert "SAMSUNG MZVLB512HAJQ-000L7  512.1 GB" in screen
    term.wait_focused("> Upgrade <")
    term.press("enter")
    screen = term.wait_for("Summary")
    assert "the VMs and data on /dev/nvme0n1 are kept" in screen
    confirm(term, "Upgrade Engine")
    screen = term.wait_for("Upgraded /dev/nvme0n1 to Engine 5.0", timeout=15)
    assert "slot B" in screen and "Engine 4.5 stays in the other slot" in screen
    for vm in (
        "Dev Build Env (custom, PV 4.5.0)",
        "Alice Windows 10 (local, PV 4.0.7)",
        "Lab Ubuntu 22.04 (local, PV 4.5.1)",
    ):
        assert vm in screen
    assert "Office Desktop" not in screen and "Browser Sandbox" not in screen
    term.press("tab", "enter")  # Power off
    status, last = term.finish()
    assert status == 0 and last.startswith("dry-run: would poweroff")


def test_remove_and_reinstall(run) -> None:
    term = run("two-disks")
    through_keyboard(term)
    term.wait_for("An Engine installation was found")
    term.press("tab")
    term.wait_focused("> Remove and reinstall <")
    term.press("enter")
    screen = term.wait_for("Summary")
    assert "ALL DATA ON /dev/nvme0n1 WILL BE ERASED" in screen
    assert "Engine 4.5 and its 2 VMs are removed for good" in screen
    confirm(term, "Erase and reinstall")
    screen = term.wait_for("Reinstalled Engine 5.0 (build 5021) on /dev/nvme0n1", timeout=15)
    assert "PV-driver" not in screen
    term.press("enter")
    assert term.finish()[0] == 0
    assert "action=reinstall target=/dev/nvme0n1" in term.log.read_text()


def test_downgrade_refused(run) -> None:
    term = run("engine-6.0")
    through_keyboard(term)
    screen = term.wait_for("stops running")
    assert "Engine 6.0 (build 6003), NEWER than this medium" in screen
    lines = {line.split()[1]: line for line in screen.splitlines() if " PV " in line}
    assert "stops running (for 6.0)" in lines["Finance"]
    assert "stops running (for 6.0)" in lines["Field"]
    assert "stop running" not in lines["CAD"]  # published for 5.0: still runs
    term.wait_focused("> Back <")
    term.press("tab", "enter")  # Downgrade, without ticking the confirmation
    screen = term.wait_for("Tick the confirmation to")
    assert "5/5 Existing installation" in screen
    term.press("esc")
    term.wait_for("4/5 Keyboard layout")
    for _ in range(3):
        term.press("esc")
    term.wait_for("1/5 Install choice")
    term.press("down", "down", "enter")  # Power off
    status, last = term.finish()
    assert status == 0 and last.startswith("dry-run: would poweroff")
    log = term.log.read_text()
    assert "refused: /dev/nvme0n1 holds Engine 6.0, newer than this medium's 5.0" in log
    assert "confirmed plan" not in log


def test_eula_declined(run) -> None:
    term = run("empty-disk")
    term.press("enter")
    term.wait_for("2/5 Welcome")
    term.press("enter")
    term.wait_for("3/5 Licence agreement")
    term.press("enter")  # Back is focused: declining returns to the welcome screen
    term.wait_for("2/5 Welcome")
    term.press("enter")
    term.wait_for("3/5 Licence agreement")
    term.press("esc")
    term.wait_for("2/5 Welcome")
    term.press("esc")
    term.wait_for("1/5 Install choice")
    term.press("down", "enter")  # Reboot
    status, last = term.finish()
    assert status == 0 and last.startswith("dry-run: would reboot")
    assert b"4/5 Keyboard" not in term.output
    assert "confirmed plan" not in term.log.read_text()


def test_failed_hardware_check_needs_the_lab_override(run) -> None:
    pytest.importorskip("engine_installer.hw.check")
    term = run("vtx-disabled")
    term.press("enter")
    term.wait_for("Compatibility: FAIL")
    screen = term.wait_for("Lab override")
    assert "fail: vt-x: VT-x is disabled" in screen
    term.press("enter")  # Continue without the override
    screen = term.wait_for("Cannot install on this machine: the vt-x check failed")
    assert "2/5 Welcome" in screen
    # The failing check's whole text is on screen, wrapped: the fix is in its last words.
    flat = " ".join(" ".join(re.sub("[│█▲▼]", " ", line).split()) for line in screen.splitlines())
    assert "then power off and on" in flat and "some Core i3 CPUs have no VT-d" in flat
    term.press("up", "space", "down", "right", "enter")
    term.wait_for("3/5 Licence agreement")
    term.press("tab", "enter")
    term.wait_for("4/5 Keyboard layout")
    term.press("enter")
    term.wait_for("5/5 Target disk")
    term.press("enter")
    screen = term.wait_for("Summary")
    assert "Lab override: the hardware check failed (logged)" in screen
    assert "LAB OVERRIDE" in term.log.read_text()


def test_ctrl_c_and_esc_while_installing_stay_on_installing(run) -> None:
    term = run("engine-4.5", env={"ENGINE_INSTALLER_SIM_SECONDS": "8"})
    through_keyboard(term)
    term.wait_for("An Engine installation was found")
    term.press("enter")
    confirm(term, "Upgrade Engine")
    term.wait_for("Step 1 of 8")
    term.press("\x03")  # Ctrl-C: the terminal's interrupt character
    screen = term.wait_for("Ctrl-C is ignored while the disk is written")
    assert "Installing" in screen and term.child.isalive()
    term.press("esc")
    screen = term.wait_for("Esc is ignored while the disk is written")
    assert "Installing" in screen
    screen = term.wait_for("Upgraded /dev/nvme0n1 to Engine 5.0", timeout=30)
    assert "All steps" not in screen  # the Finished screen, not Installing
    term.press("enter")
    status, _last = term.finish()
    assert status == 0
    assert "Ctrl-C ignored: the disk is being written" in term.log.read_text()


def test_ctrl_c_before_writing_ends_the_installer(run) -> None:
    term = run("empty-disk")
    term.press("\x03")
    status, last = term.finish()
    assert status == 130 and last == "interrupted before any disk was written"


def test_progress_shows_step_of_total_overall_bar_and_time_left(run) -> None:
    term = run("empty-disk", env={"ENGINE_INSTALLER_SIM_SECONDS": "12"})
    through_keyboard(term)
    term.wait_for("5/5 Target disk")
    term.press("enter")
    confirm(term, "Install Engine")
    screen = term.wait_for("Writing Engine 5.0 (build 5021) into slot A", timeout=15)
    assert re.search(r"Step 5 of 12: Writing Engine 5\.0 \(build 5021\) into slot A", screen)
    screen = term.wait_for(" left", timeout=15)
    assert re.search(r"All steps: [█░]+ +\d+\.\d%   about \d+ s left", screen), screen
    assert re.search(r"MiB of 1\.2 GiB +[\d.]+ [MG]iB/s", screen), screen
    assert "✓ Step 1 of 12: Partitioning /dev/nvme0n1" in screen
    term.wait_for("Installed Engine 5.0", timeout=30)


def test_japanese_from_start_to_finish(run) -> None:
    term = run("empty-disk", env={"ENGINE_INSTALLER_LANG": "ja"})
    screen = term.wait_for("Engine をインストールする")
    assert "1/5 インストールの選択" in screen and "(*) 日本語" in screen
    term.press("enter")
    term.wait_for("2/5 ようこそ")
    term.press("enter")
    term.wait_for("3/5 使用許諾契約")
    assert "ENGINE エンドユーザー使用許諾契約" in term.wait_for("エンドユーザー")  # eula.ja.txt
    term.press("tab", "enter")
    term.wait_for("4/5 キーボードレイアウト")
    term.press("enter")
    term.wait_for("5/5 インストール先のディスク")
    term.press("enter")
    screen = term.wait_for("内容の確認")
    assert "/dev/nvme0n1 のデータはすべて消去されます。" in screen
    assert "手順 1/12: /dev/nvme0n1 にパーティションを作成" in screen
    term.press("tab", "enter")
    screen = term.wait_for("インストールしました", timeout=30)
    assert "スロットAから起動します" in re.sub(r"[\s│]", "", screen)
    term.press("enter")
    status, last = term.finish()
    assert status == 0 and last.startswith("ドライラン: ここで reboot を実行します")
