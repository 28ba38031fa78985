"""The installer's text UI: urwid main loop, app state, threading and the screen order.

Only the main thread touches widgets. Slow work (detection, the install, loadkeys) runs in
worker threads via background(); results and progress come back through post(), which queues
a call and wakes the main loop through a pipe (urwid's watch_pipe), so the UI never blocks.
"""

from __future__ import annotations

import logging
import os
import queue
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import urwid

from engine_installer.base.errors import UserError
from engine_installer.base.logs import start_log
from engine_installer.install.plan import Plan
from engine_installer.install.prepare import Prepared
from engine_installer.install.results import InstallResult
from engine_installer.machine.snapshot import DetectedInstall, MachineSnapshot, load_snapshot
from engine_installer.ondisk.payload import Manifest
from engine_installer.tui import widgets as W
from engine_installer.tui.backend import Backend, LiveBackend
from engine_installer.tui.screens import build_steps
from engine_installer.tui.screens.base import Screen
from engine_installer.tui.screens.error import ErrorScreen
from engine_installer.tui.sequencer import Sequencer, Step

log = logging.getLogger("engine_installer.tui")

MIN_COLS, MIN_ROWS = 80, 24


class SerialSafeScreen(urwid.raw_display.Screen):
    """A serial console reports a 0x0 window (no TIOCGWINSZ from the far end); urwid falls back
    to 80x24 only for TERM=ansi/vt100, so draw at the 80x24 minimum on any terminal that does."""

    def get_cols_rows(self) -> tuple[int, int]:
        cols, rows = super().get_cols_rows()
        if cols <= 0 or rows <= 0:
            cols, rows = MIN_COLS, MIN_ROWS
            self.maxrow = rows
        return cols, rows


SERIAL_TERMS = ("vt100", "vt102", "vt220", "linux-serial", "dumb")


class MinimumSize(urwid.WidgetWrap):
    """Shows a notice instead of a garbled screen on terminals smaller than 80x24."""

    def render(self, size: tuple[int, ...], focus: bool = False) -> urwid.Canvas:
        cols, rows = size[0], size[1] if len(size) > 1 else MIN_ROWS
        if cols < MIN_COLS or rows < MIN_ROWS:
            notice = urwid.Filler(
                urwid.Text(f"The installer needs an 80x24 terminal (this one is {cols}x{rows}).")
            )
            return notice.render(size, focus)
        return super().render(size, focus)


class InstallerApp:
    def __init__(
        self, backend: Backend, plan: Plan | None = None, ascii: bool = False, threaded: bool = True
    ):
        W.ASCII["ascii"] = ascii
        W.ASCII["plain_glyphs"] = os.environ.get("TERM", "") == "linux"
        self.backend = backend
        self.plan = plan or Plan()
        self.threaded = threaded
        self.media: Manifest | None = None
        self.hw: Any | None = None
        self.hw_loaded = False
        self.machine: MachineSnapshot | None = None
        self.chosen: DetectedInstall | None = None
        self.prepared: Prepared | None = None
        self.result: InstallResult | None = None
        self.error = ""
        self.exit_message = ""
        self.exit_code = 0
        self.loop: urwid.MainLoop | None = None
        self._calls: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...]]] = queue.Queue()
        self._pipe_fd: int | None = None

        self.header = urwid.Text("")
        self.footer = urwid.Text("")
        self.body = urwid.WidgetPlaceholder(urwid.SolidFill(" "))
        self.frame = urwid.Frame(
            urwid.AttrMap(self.body, "body"),
            header=urwid.AttrMap(self.header, "header"),
            footer=urwid.AttrMap(self.footer, "footer"),
        )
        self.top = MinimumSize(self.frame)
        self.steps: list[Step] = build_steps()
        self.sequencer = Sequencer(self.steps, self, self._show_step)
        self.screen: Screen | None = None

    # ---- threading -------------------------------------------------------------------------
    def post(self, func: Callable[..., Any], *args: Any) -> None:
        """Run func(*args) on the main thread (callable from any thread)."""
        if self._pipe_fd is None:
            func(*args)
            return
        self._calls.put((func, args))
        os.write(self._pipe_fd, b"x")

    def _drain(self, _data: bytes) -> bool:
        while True:
            try:
                func, args = self._calls.get_nowait()
            except queue.Empty:
                return True
            func(*args)

    def background(
        self,
        work: Callable[[], Any],
        on_done: Callable[[Any], None],
        on_error: Callable[[str], None],
    ) -> None:
        """Run work() off the UI thread; its result or one-line error comes back via post()."""

        def runner() -> None:
            try:
                result = work()
            except UserError as err:
                log.error("%s", err)
                self.post(on_error, str(err))
            except Exception as err:  # an unexpected failure still gets the error screen
                log.exception("unexpected failure")
                self.post(on_error, f"unexpected failure: {err.__class__.__name__}: {err}")
            else:
                self.post(on_done, result)

        if self.threaded:
            threading.Thread(target=runner, daemon=True).start()
        else:
            runner()

    def every(self, seconds: float, func: Callable[[], bool]) -> None:
        """Call func on the main thread every `seconds` while it returns True."""
        if self.loop is None:
            return

        def tick(loop: urwid.MainLoop, _data: Any) -> None:
            if func():
                loop.set_alarm_in(seconds, tick)

        self.loop.set_alarm_in(seconds, tick)

    # ---- screens ---------------------------------------------------------------------------
    def start(self) -> None:
        try:
            self.media = self.backend.media()
        except UserError as err:
            self.fail(str(err), retry="start")  # e.g. the medium is not mounted yet
            return
        log.info("media: %s", self.media.label())
        self.sequencer.start()

    def _show_step(self, _step: Step, screen: Screen) -> None:
        self.show(screen)

    def show(self, screen: Screen) -> None:
        self.screen = screen
        media = self.media.label() if self.media else "no medium"
        dry = "  [DRY RUN: nothing is written]" if self.backend.dry_run else ""
        self.header.set_text(W.t(f" Engine installer — {media}{dry}"))
        self.footer.set_text(W.t(" " + screen.hints))
        self.body.original_widget = urwid.Padding(
            W.box(urwid.Padding(screen.widget, left=1, right=1), W.t(screen.title)), left=1, right=1
        )
        screen.on_show()

    def backend_machine_name(self) -> str:
        return self.backend.machine_name()

    def forward(self) -> bool:
        return self.sequencer.forward()

    def back(self) -> bool:
        return self.sequencer.back()

    def fail(self, message: str, retry: str | None = "summary") -> None:
        """Show the error screen: one sentence, the log path, retry / shell / reboot."""
        self.error = message
        log.error("error screen: %s", message)
        self.show(ErrorScreen(self, retry))

    def unhandled_input(self, key: str) -> bool | None:
        if key == "esc" and self.screen is not None and self.screen.allows_back:
            self.screen.go_back()
            return True
        return None

    def exit(self, message: str, code: int = 0) -> None:
        self.exit_message = message
        self.exit_code = code
        log.info("exit: %s", message)
        if self.loop is not None:
            raise urwid.ExitMainLoop()

    def power(self, what: str) -> None:
        message = self.backend.power(what)
        self.exit(message or f"{what} requested")

    def shell(self) -> None:
        if self.backend.dry_run or self.loop is None:
            self.exit("dry-run: would open a root shell; nothing on this machine was written")
            return
        self.loop.screen.stop()
        try:
            print("Type 'exit' to return to the installer.")
            subprocess.call([os.environ.get("SHELL", "/bin/sh")])
        finally:
            self.loop.screen.start()
            self.loop.draw_screen()

    def run(self) -> int:
        screen = SerialSafeScreen()
        if W.ASCII["ascii"]:
            screen.set_terminal_properties(colors=16)
        self.loop = urwid.MainLoop(
            self.top,
            W.PALETTE,
            screen=screen,
            handle_mouse=False,
            unhandled_input=self.unhandled_input,
            input_filter=tab_as_arrows,
        )
        self._pipe_fd = self.loop.watch_pipe(self._drain)
        self.start()
        if not self.exit_message:
            self.loop.run()
        return self.exit_code


def tab_as_arrows(keys: list[str], _raw: list[int]) -> list[str]:
    """Tab / Shift-Tab step between buttons like Right / Left (urwid binds no Tab itself)."""
    return [{"tab": "right", "shift tab": "left"}.get(k, k) for k in keys]


def default_log_path(dry_run: bool) -> Path:
    override = os.environ.get("ENGINE_INSTALLER_LOG")
    if override:
        return Path(override)
    if dry_run:
        return Path(tempfile.gettempdir()) / "engine-installer-dry-run.log"
    return Path("/var/log/engine-installer.log")


def ascii_wanted(flag: bool) -> bool:
    return flag or os.environ.get("TERM", "") in SERIAL_TERMS


def make_backend(args: Any, log_path: Path) -> Backend:
    if args.dry_run:
        from engine_installer.tui.simulated import SimulatedBackend

        return SimulatedBackend(load_snapshot(args.profile), args.source, log_path)
    if args.profile:
        raise UserError("--profile replaces the live probe only with --dry-run: add --dry-run")
    return LiveBackend(args.source, log_path)


def start_live_log() -> Path | None:
    """On the live system, log into the disk backend's run log (copied onto the installed
    disk at the end), so the screens and the disk actions share one file."""
    if os.environ.get("ENGINE_INSTALLER_LOG"):
        return None
    try:
        return start_log("install")
    except OSError:
        return None


def run_tui(args: Any) -> int:
    shared_log = None if args.dry_run else start_live_log()
    log_path = shared_log or default_log_path(args.dry_run)
    backend = make_backend(args, log_path)
    root = logging.getLogger("engine_installer")
    root.setLevel(logging.INFO)
    if shared_log is None:
        try:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            handler: logging.Handler = logging.FileHandler(log_path)
        except OSError as err:
            msg = f"cannot write the log {log_path} ({err}): set ENGINE_INSTALLER_LOG"
            raise UserError(msg) from None
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        root.addHandler(handler)
    log.info("start: dry_run=%s profile=%s source=%s", args.dry_run, args.profile, args.source)
    app = InstallerApp(backend, Plan(source=args.source), ascii=ascii_wanted(args.ascii))
    code = app.run()
    if app.exit_message:
        print(app.exit_message)
    return code
