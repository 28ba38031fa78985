"""Screens through urwid's own widget APIs, against recorded machines (no terminal, no thread)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from engine_installer.base.errors import RefusedError, UserError
from engine_installer.install.plan import Action, Plan
from engine_installer.machine.snapshot import load_snapshot
from engine_installer.tui import widgets as W
from engine_installer.tui.app import InstallerApp, tab_as_arrows
from engine_installer.tui.screens.choice import ChoiceScreen
from engine_installer.tui.screens.error import ErrorScreen
from engine_installer.tui.screens.eula import EulaScreen
from engine_installer.tui.screens.existing import ExistingInstallScreen, TargetScreen
from engine_installer.tui.screens.keyboard import KeyboardScreen
from engine_installer.tui.screens.welcome import WelcomeScreen
from engine_installer.tui.simulated import SimulatedBackend

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
MACHINES = Path(__file__).resolve().parents[2] / "recorded-machines"
SIZE = (76, 20)  # the body inside the frame and box at 80x24


@pytest.fixture(autouse=True)
def fast_simulation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGINE_INSTALLER_SIM_SECONDS", "0.05")
    monkeypatch.delenv("ENGINE_INSTALLER_SIM_FAIL", raising=False)


def make_app(machine: str, tmp_path: Path) -> InstallerApp:
    backend = SimulatedBackend(
        load_snapshot(MACHINES / f"{machine}.json"), None, tmp_path / "installer.log"
    )
    app = InstallerApp(backend, Plan(), threaded=False)
    app.start()
    return app


def screen_text(app: InstallerApp) -> str:
    """The 80x24 screen as the terminal would show it."""
    return "\n".join(row.decode() for row in app.top.render((80, 24), focus=True).text)


def flat(text: str) -> str:
    """The screen's words in one line (wrapped lines joined, frame and scroll bar dropped)."""
    import re

    return " ".join(
        " ".join(re.sub("[│█▲▼┌┐└┘─]", " ", line).split()) for line in text.splitlines()
    )


def keys(app: InstallerApp, *names: str) -> None:
    """Type keys into the current screen as the main loop would (Esc reaches unhandled_input)."""
    for name in names:
        if app.screen.widget.keypress(SIZE, name) is not None:
            app.unhandled_input(name)


def step(app: InstallerApp) -> str:
    return app.sequencer.current.name


def to_keyboard(app: InstallerApp) -> None:
    keys(app, "enter")  # Install Engine
    keys(app, "enter")  # Continue
    keys(app, "right", "enter")  # Accept


def test_choice_focuses_install(tmp_path: Path) -> None:
    app = make_app("empty-disk", tmp_path)
    assert isinstance(app.screen, ChoiceScreen)
    assert app.screen.scroller.pile.focus is app.screen.menu
    assert app.screen.menu.focus.value == "install"
    assert [item.label for item in app.screen.items] == ["Install Engine", "Reboot", "Power off"]


def test_welcome_names_media_and_machine_and_focuses_continue(tmp_path: Path) -> None:
    app = make_app("engine-4.5", tmp_path)
    keys(app, "enter")
    assert isinstance(app.screen, WelcomeScreen)
    assert W.focused_label(app.screen.buttons) == "Continue"
    text = screen_text(app)
    assert "Engine 5.0 (build 5021)" in text
    assert "LENOVO ThinkPad T480" in text


def test_eula_back_is_focused_and_enter_goes_back(tmp_path: Path) -> None:
    app = make_app("empty-disk", tmp_path)
    keys(app, "enter", "enter")
    assert isinstance(app.screen, EulaScreen)
    assert W.row_labels(app.screen.buttons) == ["Back", "Accept"]
    assert W.focused_label(app.screen.buttons) == "Back"
    keys(app, "enter")
    assert step(app) == "welcome"
    assert not app.plan.eula_accepted


def test_eula_cannot_be_skipped(tmp_path: Path) -> None:
    app = make_app("empty-disk", tmp_path)
    keys(app, "enter", "enter")
    # Scrolling, moving around and the sequencer itself never get past an unaccepted EULA.
    keys(app, "page down", "page down", "down", "up", "left", "tab", "esc")
    assert step(app) == "welcome"  # Esc is Back
    keys(app, "enter")
    assert step(app) == "eula"
    assert app.forward() is False
    assert step(app) == "eula" and not app.plan.eula_accepted
    keys(app, "right", "enter")
    assert app.plan.eula_accepted and step(app) == "keyboard"


def test_keyboard_search_and_choice_lands_in_plan(tmp_path: Path, caplog) -> None:
    app = make_app("empty-disk", tmp_path)
    to_keyboard(app)
    screen = app.screen
    assert isinstance(screen, KeyboardScreen)
    assert screen.focused_layout() == "us"  # the current layout is focused
    assert {"us", "gb", "de", "fr", "es", "it", "jp106"} <= set(screen.layouts)
    assert screen.layouts[0] == "us"  # the current layout first
    with caplog.at_level(logging.INFO, logger="engine_installer.tui"):
        keys(app, "d", "e")
        assert screen.search.edit_text == "de"
        assert screen.focused_layout() == "de"
        keys(app, "enter")
    assert app.plan.keyboard == "de"
    assert "dry-run: would run loadkeys de" in caplog.text
    assert step(app) == "target"  # detection ran, nothing found on the empty disk


def test_keyboard_backspace_widens_the_search(tmp_path: Path) -> None:
    app = make_app("empty-disk", tmp_path)
    to_keyboard(app)
    keys(app, "j", "p")
    assert all("jp" in name for name in app.screen.matching())
    keys(app, "backspace", "backspace")
    assert app.screen.matching() == app.screen.layouts


def test_back_navigation_walks_every_screen_before_confirmation(tmp_path: Path) -> None:
    app = make_app("engine-4.5", tmp_path)
    to_keyboard(app)
    keys(app, "enter")  # keep us
    assert step(app) == "existing"
    keys(app, "enter")  # Upgrade (focused)
    assert step(app) == "summary" and app.plan.action == Action.UPGRADE
    visited = []
    for _ in range(5):
        keys(app, "esc")
        visited.append(step(app))
    # The transient detection step is skipped on the way back.
    assert visited == ["existing", "keyboard", "eula", "welcome", "choice"]
    keys(app, "esc")
    assert step(app) == "choice"


def test_existing_install_shows_versions_and_vms(tmp_path: Path) -> None:
    app = make_app("engine-4.5", tmp_path)
    to_keyboard(app)
    keys(app, "enter")
    screen = app.screen
    assert isinstance(screen, ExistingInstallScreen)
    assert W.row_labels(screen.buttons) == ["Upgrade", "Remove and reinstall", "Back"]
    assert not screen.downgrade


def test_downgrade_refused_unless_confirmed(tmp_path: Path) -> None:
    app = make_app("engine-6.0", tmp_path)
    to_keyboard(app)
    keys(app, "enter")
    screen = app.screen
    assert isinstance(screen, ExistingInstallScreen) and screen.downgrade
    assert W.focused_label(screen.buttons) == "Back"
    assert [vm.name for vm in screen.blocked] == ["Finance Desktop", "Field Notes"]
    assert W.row_labels(screen.buttons)[:2] == ["Back", "Downgrade"]
    keys(app, "right", "enter")  # Downgrade without the confirmation
    assert step(app) == "existing" and app.plan.target is None
    assert "tick the confirmation to downgrade anyway" in screen.message.text.lower()
    screen.confirm.set_state(True)
    keys(app, "enter")
    assert step(app) == "summary"
    assert app.plan.allow_downgrade and app.plan.action == Action.UPGRADE
    # Every word on the summary says downgrade, none says upgrade.
    assert W.row_labels(app.screen.buttons) == ["Back", "Downgrade Engine"]
    text = b"\n".join(app.top.render((80, 24)).text).decode()
    assert "DOWNGRADE" in text and "Upgrade:" not in text


def test_target_list_excludes_boot_medium_and_busy_disks(tmp_path: Path) -> None:
    app = make_app("windows-only", tmp_path)
    to_keyboard(app)
    keys(app, "enter")
    screen = app.screen
    assert isinstance(screen, TargetScreen)
    assert [item.value for item in screen.items] == ["/dev/nvme0n1"]
    refused = {o.disk.path: o.refusal for o in screen.options if not o.offered}
    assert "boot medium" in refused["/dev/sda"]
    assert "mounted at /media/SDCARD" in refused["/dev/mmcblk0"]
    # The refused disks are on the list with their reason, and the focus never lands there.
    text = screen_text(app)
    assert "/dev/mmcblk0" in text and "not offered: /dev/mmcblk0 is in use" in text
    for key in ("down", "down", "up", "up", "up"):  # Down leaves the list for Back
        keys(app, key)
        assert app.screen.scroller.pile.focus.value == "/dev/nvme0n1"
    keys(app, "enter")
    assert app.plan.target == "/dev/nvme0n1" and app.plan.action == Action.INSTALL


def test_summary_focuses_back_and_confirm_runs_to_done(tmp_path: Path) -> None:
    app = make_app("engine-4.5", tmp_path)
    to_keyboard(app)
    keys(app, "enter", "enter")
    assert W.row_labels(app.screen.buttons) == ["Back", "Upgrade Engine"]
    assert W.focused_label(app.screen.buttons) == "Back"
    keys(app, "right", "enter")
    assert step(app) == "done"
    assert [vm.name for vm in app.session.result.report.vms_needing_pv_upgrade] == [
        "Dev Build Env",
        "Alice Windows 10",
        "Lab Ubuntu 22.04",
    ]
    assert app.session.result.slot == "B" and app.session.result.previous_version == "4.5"
    assert app.sequencer.back() is False  # no way back once installed


def test_several_installs_choose_one(tmp_path: Path) -> None:
    app = make_app("two-engines", tmp_path)
    to_keyboard(app)
    keys(app, "enter")
    assert step(app) == "choose-install"
    keys(app, "down", "enter")
    assert step(app) == "existing" and app.session.chosen.disk == "/dev/nvme1n1"
    assert W.row_labels(app.screen.buttons) == ["Remove and reinstall", "Back"]


def test_failed_install_shows_error_and_retry_returns_to_summary(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("ENGINE_INSTALLER_SIM_FAIL", "write-slot")
    app = make_app("empty-disk", tmp_path)
    to_keyboard(app)
    keys(app, "enter", "enter", "right", "enter")
    assert isinstance(app.screen, ErrorScreen)
    assert "into slot A failed: I/O error" in app.session.error
    assert W.row_labels(app.screen.buttons) == ["Back", "View log", "Shell", "Reboot", "Power off"]
    assert (
        "a real run would save it to the EFI system partition of /dev/nvme0n1"
        in (
            screen_text(app).replace("\n", " ").replace("│", " ").replace("  ", " ")
            or app.session.log_saved_to
        )
        or "EFI system partition of /dev/nvme0n1" in app.session.log_saved_to
    )
    keys(app, "enter")  # Back probes the disks again and starts over from screen 5
    assert step(app) == "target" and not app.plan.confirmed and app.plan.target is None


def test_failed_hardware_check_blocks_until_lab_override(tmp_path: Path, caplog) -> None:
    app = make_app("empty-disk", tmp_path)
    report = SimpleNamespace(
        profile_name="unknown",
        model="Dell Latitude 7490",
        verdict="fail",
        items=[SimpleNamespace(name="vt-x", status="fail", message="VT-x is disabled in firmware")],
        kernel_args=["intel_iommu=on"],
    )
    app.backend.hardware = lambda: report
    keys(app, "enter")
    keys(app, "enter")  # Continue
    assert step(app) == "welcome"
    assert "the vt-x check failed" in app.screen.message.text
    assert "VT-x is disabled in firmware" in screen_text(app)
    app.screen.override.set_state(True)
    with caplog.at_level(logging.WARNING, logger="engine_installer.tui"):
        keys(app, "enter")
    assert step(app) == "eula" and app.plan.lab_override
    assert "LAB OVERRIDE" in caplog.text


def test_dry_run_refuses_what_prepare_refuses(tmp_path: Path) -> None:
    from engine_installer.install.prepare import prepare
    from engine_installer.tui.simulated import recorded_manifest

    snap = load_snapshot(MACHINES / "engine-6.0.json")
    media = recorded_manifest(snap)
    plan = Plan(target="/dev/nvme0n1", eula_accepted=True, confirmed=True, action=Action.UPGRADE)
    prepared = prepare(plan, snap, media)
    assert [r.code for r in prepared.refusals] == ["downgrade"]
    backend = SimulatedBackend(snap, None, tmp_path / "log")
    with pytest.raises(RefusedError, match="allow_downgrade"):
        backend.run(prepared, lambda _e: None)
    plan.target = "/dev/sda"
    assert "boot-medium" in [r.code for r in prepare(plan, snap, media).refusals]


def test_simulated_run_walks_the_prepared_steps(tmp_path: Path) -> None:
    from engine_installer.install.actions import step_lines
    from engine_installer.install.prepare import prepare
    from engine_installer.tui.simulated import recorded_manifest

    snap = load_snapshot(MACHINES / "empty-disk.json")
    backend = SimulatedBackend(snap, None, tmp_path / "l")
    plan = Plan(target="/dev/nvme0n1", eula_accepted=True, confirmed=True, action=Action.INSTALL)
    prepared = prepare(plan, backend.snapshot(), recorded_manifest(snap))
    events = []
    result = backend.run(prepared, events.append)
    starts = [e.step_line for e in events if e.step and e.message]
    assert starts == step_lines(prepared.actions) == result.steps
    assert [e.phase for e in events if e.step and e.message][:3] == [
        "partition",
        "format",
        "marker",
    ]
    for index in range(1, len(prepared.actions) + 1):
        last = [e for e in events if e.step == index][-1]
        assert last.done == last.total > 0
    assert result.action == "install" and result.slot == "A"


def test_tab_moves_like_arrows() -> None:
    assert tab_as_arrows(["tab", "shift tab", "enter"], []) == ["right", "left", "enter"]


def test_keyboard_failure_warns_then_goes_on(tmp_path: Path) -> None:
    app = make_app("empty-disk", tmp_path)
    to_keyboard(app)

    def no_console(_layout: str) -> None:
        raise UserError(
            "loadkeys gb failed: Couldn't get a file descriptor referring to the console"
        )

    app.backend.apply_keyboard = no_console
    keys(app, "g", "b", "enter")
    assert step(app) == "keyboard" and "file descriptor" in app.screen.message.text
    keys(app, "enter")
    assert app.plan.keyboard == "gb" and step(app) == "target"


def test_worker_protocol_round_trips_plan_and_result(tmp_path: Path) -> None:
    from engine_installer.install.report import UpgradeReport
    from engine_installer.install.results import InstallResult
    from engine_installer.ondisk.vms import VMInfo
    from engine_installer.tui import worker

    plan = Plan(
        Action.UPGRADE, "/dev/sda", "de", True, tmp_path, True, ["quiet"], True, confirmed=True
    )
    assert worker.plan_from_json(json.loads(json.dumps(worker.plan_to_json(plan)))) == plan
    report = UpgradeReport(
        "upgrade", "/dev/sda", "4.5", "5.0", "50", "5.0", [VMInfo("a", "local", "4.5", "4.5.1")]
    )
    result = InstallResult("upgrade", "/dev/sda", "5.0", "50", "B", "4.5", report)
    assert InstallResult.from_json(json.loads(json.dumps(result.to_json()))) == result


def test_worker_failure_comes_back_as_one_line_user_error(tmp_path: Path) -> None:
    from engine_installer.install.prepare import Prepared
    from engine_installer.tui.simulated import recorded_manifest
    from engine_installer.tui.worker import run_in_child

    media = recorded_manifest(load_snapshot(MACHINES / "empty-disk.json"))
    prepared = Prepared(Plan(target="/dev/nonexistent-disk"), media, None, None, "")
    with pytest.raises(UserError) as err:  # no Engine at the source: nothing is written
        run_in_child(prepared, tmp_path, tmp_path / "log", lambda _e: None)
    assert "\n" not in str(err.value) and "no Engine payload" in str(err.value)


def _pump(app: InstallerApp, read_fd: int, until, timeout: float = 10.0) -> None:
    """The main loop's part: wait on the wake-up pipe and run the queued calls here."""
    import select
    import time

    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, f"stuck on {step(app)}"
        if select.select([read_fd], [], [], 0.05)[0]:
            app._drain(os.read(read_fd, 4096))


def test_backend_runs_off_the_ui_thread_and_widgets_only_on_it(tmp_path: Path) -> None:
    import threading

    backend = SimulatedBackend(load_snapshot(MACHINES / "engine-4.5.json"), None, tmp_path / "l")
    seen: dict[str, set[bool]] = {}

    def record(name: str, func):
        def wrapper(*args, **kwargs):
            seen.setdefault(name, set()).add(threading.current_thread() is threading.main_thread())
            return func(*args, **kwargs)

        return wrapper

    for name in ("hardware", "snapshot", "apply_keyboard", "run"):
        setattr(backend, name, record(name, getattr(backend, name)))
    app = InstallerApp(backend, Plan(), threaded=True)
    app.show = record("show", app.show)
    read_fd, app._pipe_fd = os.pipe()
    app.start()
    keys(app, "enter")
    keys(app, "enter", "right", "enter")  # Continue, Accept
    keys(app, "enter")  # layout us: applied in the background
    _pump(app, read_fd, lambda: step(app) == "existing")
    keys(app, "enter", "right", "enter")  # Upgrade, confirm
    _pump(app, read_fd, lambda: step(app) == "done")
    assert seen["hardware"] == seen["snapshot"] == seen["apply_keyboard"] == seen["run"] == {False}
    assert seen["show"] == {True}
    report = app.session.result.report
    assert [vm.kind for vm in report.vms_needing_pv_upgrade] == ["custom", "local", "local"]


@pytest.mark.parametrize("machine", ["engine-6.0", "windows-only"])
def test_ascii_mode_draws_only_ascii(tmp_path: Path, machine: str) -> None:
    backend = SimulatedBackend(load_snapshot(MACHINES / f"{machine}.json"), None, tmp_path / "l")
    app = InstallerApp(backend, Plan(), ascii=True, threaded=False)
    app.start()
    to_keyboard(app)
    keys(app, "enter")
    for _ in range(2):  # the existing-install or target screen, then the summary
        rows = app.top.render((80, 24)).text
        assert all(max(row) < 128 for row in rows), b"\n".join(rows).decode()
        keys(app, "right", "enter") if machine == "engine-6.0" else keys(app, "enter")
    W.ASCII["ascii"] = False


def test_too_small_terminal_gets_a_notice(tmp_path: Path) -> None:
    app = make_app("empty-disk", tmp_path)
    text = b"".join(app.top.render((70, 20)).text).decode()
    assert "needs an 80x24 terminal (this one is 70x20)" in text


def test_serial_console_without_a_window_size_gets_80x24(monkeypatch):
    """A serial line reports 0x0; the installer must still draw (at the 80x24 minimum)."""
    import urwid

    from engine_installer.tui.app import SerialSafeScreen

    monkeypatch.setattr(urwid.raw_display.Screen, "get_cols_rows", lambda self: (0, 0))
    assert SerialSafeScreen().get_cols_rows() == (80, 24)


# ---- issue 11 and 16: session, language, keyboard names, scrolling, errors, focus ------------


@pytest.fixture
def english_afterwards():
    from engine_installer.base import i18n

    yield
    i18n.set_language("en")


def test_language_line_switches_every_word(tmp_path: Path, english_afterwards) -> None:
    app = make_app("engine-4.5", tmp_path)
    assert app.session.language == "en"
    keys(app, "up")  # from the menu to the language line
    keys(app, "right", "enter")  # 日本語
    assert app.session.language == "ja"
    text = screen_text(app)
    assert "1/5 インストールの選択" in text and "Engine をインストールする" in text
    assert "(*) 日本語" in text and "Install Engine" not in text
    keys(app, "down", "enter")  # the menu: Engine をインストールする
    assert step(app) == "welcome"
    assert "インストーラーへようこそ" in screen_text(app)
    keys(app, "esc")
    keys(app, "up", "left", "enter")  # back to English
    assert app.session.language == "en" and "Install Engine" in screen_text(app)


def test_japanese_is_not_offered_where_it_cannot_be_drawn(tmp_path: Path) -> None:
    backend = SimulatedBackend(
        load_snapshot(MACHINES / "empty-disk.json"), None, tmp_path / "installer.log"
    )
    app = InstallerApp(
        backend, Plan(), threaded=False, japanese=False, japanese_why_not="no CJK font"
    )
    app.start()
    assert "Japanese (not on this console)" in screen_text(app)
    keys(app, "up", "right", "enter")
    assert app.session.language == "en"
    assert "cannot show Japanese (no CJK font)" in app.screen.message.text


@pytest.mark.parametrize(("lang", "query"), [("en", "japan"), ("ja", "日本"), ("en", "日本")])
def test_keyboard_search_by_name_in_either_language(
    tmp_path: Path, english_afterwards, lang: str, query: str
) -> None:
    from engine_installer.base import i18n

    i18n.set_language(lang)
    app = make_app("empty-disk", tmp_path)
    to_keyboard(app)
    for char in query:
        keys(app, char)
    assert app.screen.focused_layout() == "jp106"
    assert app.screen.matching()[0] == "jp106"
    name = "日本語 (106/109 キー)" if lang == "ja" else "Japanese (106/109 keys)"
    assert name in screen_text(app) and "jp106" in screen_text(app)
    keys(app, "enter")
    assert app.plan.keyboard == "jp106"


def test_keyboard_list_leads_with_the_languages_usual_layout(
    tmp_path: Path, english_afterwards
) -> None:
    from engine_installer.base import i18n

    i18n.set_language("ja")
    app = make_app("empty-disk", tmp_path)
    to_keyboard(app)
    assert app.screen.layouts[:2] == ["jp106", "us"]
    assert app.screen.focused_layout() == "jp106"
    keys(app, "down", "enter")  # us, chosen: it is the current layout from now on
    keys(app, "esc")
    assert app.screen.layouts[:2] == ["us", "jp106"]


def test_summary_with_twelve_steps_scrolls_and_keeps_its_buttons(tmp_path: Path) -> None:
    app = make_app("empty-disk", tmp_path)
    to_keyboard(app)
    keys(app, "enter", "enter")  # layout us, the offered disk
    assert step(app) == "summary" and len(app.session.prepared.actions) == 12
    text = screen_text(app)
    assert "Step 12 of 12" not in text and "▼" in text  # more below, and it says so
    assert "< Back >" in text.replace("> Back <", "< Back >")
    keys(app, "page down", "page down")
    text = screen_text(app)
    assert "Step 12 of 12: Saving the installation report and the log on the disk" in text
    assert W.focused_label(app.screen.buttons) == "Back"  # scrolling moved no focus


def test_error_back_probes_again_and_a_refused_disk_does_not_loop(tmp_path: Path) -> None:
    """The run is refused (the disk became busy after the summary); Back probes the disks
    again, and the busy disk is now listed with its reason and cannot be chosen."""
    from dataclasses import replace as copy

    app = make_app("empty-disk", tmp_path)
    backend = app.backend
    probes = []

    def snapshot():
        machine = backend.recorded
        if probes:  # every probe after the first: the disk is mounted now
            disks = [
                copy(d, in_use="partition /dev/nvme0n1p1 is mounted at /mnt")
                if d.path == "/dev/nvme0n1"
                else d
                for d in machine.disks
            ]
            machine = copy(machine, disks=disks)
        probes.append(machine)
        return machine

    def refuse(prepared, progress):
        raise RefusedError("/dev/nvme0n1 is in use: nothing was written")

    backend.snapshot, backend.run = snapshot, refuse
    to_keyboard(app)
    keys(app, "enter", "enter", "right", "enter")
    assert isinstance(app.screen, ErrorScreen) and len(probes) == 1
    keys(app, "enter")  # Back
    assert len(probes) == 2 and step(app) == "target"
    assert app.screen.items == []  # nothing to choose: no way into the same refusal
    text = flat(screen_text(app))
    assert "not offered: /dev/nvme0n1 is in use (partition /dev/nvme0n1p1 is mounted" in text
    assert W.row_labels(app.screen.buttons) == ["Back"]


def test_view_log_from_the_error_screen_and_back(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ENGINE_INSTALLER_SIM_FAIL", "write-slot")
    (tmp_path / "installer.log").write_text("first line\nlast line of the log\n")
    app = make_app("empty-disk", tmp_path)
    to_keyboard(app)
    keys(app, "enter", "enter", "right", "enter")
    error = app.screen
    keys(app, "right", "enter")  # View log
    assert app.screen.title == "Log" and "last line of the log" in screen_text(app)
    keys(app, "esc")
    assert app.screen is error


def test_checkbox_focus_is_visible_and_a_tick_makes_downgrade_the_way_on(tmp_path: Path):
    app = make_app("engine-6.0", tmp_path)
    to_keyboard(app)
    keys(app, "enter")
    screen = app.screen
    keys(app, "up")  # to the check box
    assert "> [ ] I understand: downgrade anyway" in screen_text(app)
    keys(app, " ", "down")
    assert "> [X] I understand" not in screen_text(app)  # the focus left it...
    assert "  [X] I understand: downgrade anyway" in screen_text(app)
    assert W.focused_label(screen.buttons) == "Downgrade"  # ...for the downgrade
    assert "> Downgrade <" in screen_text(app)
    keys(app, "enter")
    assert step(app) == "summary" and app.plan.allow_downgrade


def test_ascii_mode_marks_the_focus_without_colour(tmp_path: Path) -> None:
    backend = SimulatedBackend(load_snapshot(MACHINES / "engine-4.5.json"), None, tmp_path / "l")
    app = InstallerApp(backend, Plan(), ascii=True, threaded=False)
    app.start()
    assert "> Install Engine" in screen_text(app)
    keys(app, "enter")
    assert "< Back >  > Continue <" in screen_text(app)
    W.ASCII["ascii"] = False


def test_ctrl_c_while_writing_is_ignored_with_a_note(tmp_path: Path) -> None:
    app = make_app("engine-4.5", tmp_path)
    app.writing = True
    app.unhandled_input("ctrl c")
    assert app.exit_message == ""
    assert "Ctrl-C is ignored while the disk is written" in app.screen.message.text
    app.writing = False
    app.unhandled_input("ctrl c")
    assert app.exit_message == "interrupted before any disk was written" and app.exit_code == 130
