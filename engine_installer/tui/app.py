"""The installer's text UI: urwid main loop, the session, threading and the screen order.

Only the main thread touches widgets. Slow work (detection, the install, loadkeys) runs in
worker threads via background(); results and progress come back through post(), which queues
a call and wakes the main loop through a pipe (urwid's watch_pipe), so the UI never blocks.

While the disk is being written (the Installing screen) nothing on the keyboard ends the
installer: Ctrl-C and Esc are ignored with a one-line note, and on the live system
Ctrl-Alt-Del is too (the console's Ctrl-Alt-Del target asks the installer, see
iso-build/live/overlay: it finds /run/engine-installer/writing and sends SIGUSR1).
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import urwid

from engine_installer.base import i18n
from engine_installer.base.errors import UserError
from engine_installer.base.i18n import _
from engine_installer.base.logs import start_log
from engine_installer.install.plan import Plan
from engine_installer.machine.snapshot import load_snapshot
from engine_installer.tui import boot_times, console
from engine_installer.tui import widgets as W
from engine_installer.tui.backend import Backend, LiveBackend
from engine_installer.tui.screens import build_steps
from engine_installer.tui.screens.base import Screen, title_of
from engine_installer.tui.screens.error import ErrorScreen
from engine_installer.tui.screens.logview import LogScreen
from engine_installer.tui.sequencer import Sequencer, Step
from engine_installer.tui.session import Session

log = logging.getLogger("engine_installer.tui")

MIN_COLS, MIN_ROWS = 80, 24
WRITING_FLAG = Path("/run/engine-installer/writing")  # holds our pid while the disk is written


class SerialSafeScreen(urwid.raw_display.Screen):
    """A serial console reports a 0x0 window (no TIOCGWINSZ from the far end); urwid falls back
    to 80x24 only for TERM=ansi/vt100, so draw at the 80x24 minimum on any terminal that does."""

    def get_cols_rows(self) -> tuple[int, int]:
        cols, rows = super().get_cols_rows()
        if cols <= 0 or rows <= 0:
            cols, rows = MIN_COLS, MIN_ROWS
            self.maxrow = rows
        return cols, rows


class MinimumSize(urwid.WidgetWrap):
    """Shows a notice instead of a garbled screen on terminals smaller than 80x24."""

    def render(self, size: tuple[int, ...], focus: bool = False) -> urwid.Canvas:
        cols, rows = size[0], size[1] if len(size) > 1 else MIN_ROWS
        if cols < MIN_COLS or rows < MIN_ROWS:
            notice = _("The installer needs an 80x24 terminal (this one is {cols}x{rows}).")
            return urwid.Filler(urwid.Text(notice.format(cols=cols, rows=rows))).render(size, focus)
        return super().render(size, focus)


class InstallerApp:
    def __init__(
        self,
        backend: Backend,
        plan: Plan | None = None,
        ascii: bool = False,
        threaded: bool = True,
        japanese: bool | None = True,
        japanese_why_not: str = "",
    ):
        W.ASCII["ascii"] = ascii
        W.ASCII["plain_glyphs"] = console.plain_linux_console(os.environ.get("TERM", ""))
        self.backend = backend
        self.session = Session(plan=plan or Plan(), language=i18n.language())
        self.threaded = threaded
        # Can this console show Japanese? None: a serial terminal not asked yet.
        self.japanese = japanese
        self.japanese_why_not = japanese_why_not
        self.exit_message = ""
        self.exit_code = 0
        self.writing = False  # the disk is being written: nothing may end the installer
        self.loop: urwid.MainLoop | None = None
        self._calls: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...]]] = queue.Queue()
        self._pipe_fd: int | None = None

        self.header = urwid.Text("", wrap="clip")
        self.footer = urwid.Text("", wrap="clip")
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

    # ---- the session's parts, for screens written against the app --------------------------
    @property
    def plan(self) -> Plan:
        return self.session.plan

    @property
    def media(self) -> Any:
        return self.session.media

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
                message = _("unexpected failure: {error}").format(
                    error=f"{err.__class__.__name__}: {err}"
                )
                self.post(on_error, message)
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

    # ---- language ----------------------------------------------------------------------------
    def set_language(self, lang: str) -> str:
        """Switch the screens' language; '' when done, else why not (one sentence)."""
        if lang == "ja" and self.japanese is None:
            self.probe_serial()
        if lang == "ja" and not self.japanese:
            log.warning("Japanese not available here: %s", self.japanese_why_not)
            return _(
                "This console cannot show Japanese ({why}); the installer stays in English."
            ).format(why=self.japanese_why_not)
        self.session.language = i18n.set_language(lang)
        log.info("language: %s", self.session.language)
        if self.session.language != lang:
            return _("The Japanese catalog is missing from this medium; English is used.")
        return ""

    # ---- screens ---------------------------------------------------------------------------
    def start(self) -> None:
        try:
            self.session.media = self.backend.media()
        except UserError as err:
            self.fail(str(err), back="start")  # e.g. the medium is not mounted yet
            return
        log.info("media: %s", self.session.media.label())
        self.sequencer.start()

    def _show_step(self, _step: Step, screen: Screen) -> None:
        self.show(screen)

    def show(self, screen: Screen) -> None:
        self.screen = screen
        self.redraw_frame()
        self.body.original_widget = urwid.Padding(
            W.box(urwid.Padding(screen.widget, left=1, right=1), W.t(title_of(screen))),
            left=1,
            right=1,
        )
        screen.on_show()

    def redraw_frame(self) -> None:
        media = self.session.media.label() if self.session.media else _("no medium")
        dry = _("  [DRY RUN: nothing is written]") if self.backend.dry_run else ""
        self.header.set_text(W.t(" " + _("Engine installer — {media}").format(media=media) + dry))
        if self.screen is not None:
            self.footer.set_text(W.t(" " + _(self.screen.hints)))

    def rebuild(self) -> None:
        """Draw the current screen again from the session (after a language switch)."""
        step = self.sequencer.current
        if step is not None and self.screen is self.sequencer.screen:
            self.sequencer.redraw()

    def forward(self) -> bool:
        return self.sequencer.forward()

    def back(self) -> bool:
        return self.sequencer.back()

    def fail(self, message: str, back: str | None = "summary") -> None:
        """Show the error screen: one sentence, the log, and a way on."""
        self.session.error = message
        self.session.error_back = back
        log.error("error screen: %s", message)
        self.show(ErrorScreen(self))

    def view_log(self) -> None:
        """The log, scrollable; Back returns to the screen it was opened from."""
        self.show(LogScreen(self, self.screen))

    def unhandled_input(self, key: str) -> bool | None:
        if key == "esc" and self.screen is not None:
            return True if self.screen.escape() else None
        if key == "ctrl c":
            self.interrupt("Ctrl-C")
            return True
        return None

    def interrupt(self, what: str) -> None:
        """Ctrl-C (or SIGINT): ignored while the disk is written; before that it ends the UI."""
        if self.writing:
            log.warning("%s ignored: the disk is being written", what)
            note = _(
                "{key} is ignored while the disk is written: stopping now would leave it "
                "half-written."
            )
            if self.screen is not None:
                self.screen.say(("warn", note.format(key=what)))
            return
        self.exit(_("interrupted before any disk was written"), 130)

    def exit(self, message: str, code: int = 0) -> None:
        self.exit_message = message
        self.exit_code = code
        log.info("exit: %s", message)
        if self.loop is not None:
            raise urwid.ExitMainLoop()

    def power(self, what: str) -> None:
        message = self.backend.power(what)
        self.exit(message or _("{what} requested").format(what=what))

    def shell(self) -> None:
        if self.backend.dry_run or self.loop is None:
            self.exit(_("dry-run: would open a root shell; nothing on this machine was written"))
            return
        self.loop.screen.stop()
        try:
            print(_("Type 'exit' to return to the installer."))
            subprocess.call([os.environ.get("SHELL", "/bin/sh")])
        finally:
            self.loop.screen.start()
            self.loop.draw_screen()

    def probe_serial(self) -> None:
        """Ask the serial terminal whether it shows wide characters (console.py); the screen
        is paused for the question."""
        if self.loop is None:
            self.japanese, self.japanese_why_not = False, console.NOT_ASKED
            return
        self.loop.screen.stop()
        try:
            self.japanese, self.japanese_why_not = console.japanese_shown(
                os.environ.get("TERM", ""), W.ASCII["ascii"], 0
            )
        finally:
            self.loop.screen.start()
            self.loop.draw_screen()

    # ---- writing ----------------------------------------------------------------------------
    def writing_started(self) -> None:
        self.writing = True
        if self.backend.dry_run:
            return
        try:
            WRITING_FLAG.parent.mkdir(parents=True, exist_ok=True)
            WRITING_FLAG.write_text(f"{os.getpid()}\n")
        except OSError as err:  # not the live system: nothing routes Ctrl-Alt-Del to us
            log.info("no %s (%s)", WRITING_FLAG, err)

    def writing_ended(self) -> None:
        self.writing = False
        if not self.backend.dry_run:
            WRITING_FLAG.unlink(missing_ok=True)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        what = {signal.SIGINT: "Ctrl-C", signal.SIGUSR1: "Ctrl-Alt-Del"}.get(signum, "signal")
        if signum == signal.SIGUSR1 and not self.writing:
            return
        self.post(self.interrupt, what)

    def run(self) -> int:
        screen = SerialSafeScreen()
        if W.ASCII["ascii"]:
            screen.set_terminal_properties(colors=16)
        # Ctrl-C and Ctrl-Z arrive as keys, not as signals: the UI decides what they do.
        screen.tty_signal_keys(intr="undefined", quit="undefined", susp="undefined")
        self.loop = urwid.MainLoop(
            self.top,
            W.PALETTE,
            screen=screen,
            handle_mouse=False,
            unhandled_input=self.unhandled_input,
            input_filter=tab_as_arrows,
        )
        self._pipe_fd = self.loop.watch_pipe(self._drain)
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGUSR1)
        }
        try:
            self.start()
            if not self.exit_message:
                self.loop.run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.writing_ended()
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
    return flag or os.environ.get("TERM", "") in console.SERIAL_TERMS


def make_backend(args: Any, log_path: Path) -> Backend:
    if args.dry_run:
        from engine_installer.tui.simulated import SimulatedBackend

        return SimulatedBackend(load_snapshot(args.profile), args.source, log_path)
    if args.profile:
        raise UserError(_("--profile replaces the live probe only with --dry-run: add --dry-run"))
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


def console_name() -> str:
    try:
        return os.path.basename(os.ttyname(0))
    except OSError:
        return "stdin"


def choose_console_language(ascii_flag: bool) -> tuple[bool | None, str]:
    """Whether Japanese can be shown here (None: a serial terminal, asked only when Japanese
    is chosen); a Japanese start falls back to English when it cannot."""
    term = os.environ.get("TERM", "")
    if console.is_serial(term, ascii_flag) and i18n.language() != "ja":
        return None, ""
    shown, why = console.japanese_shown(term, ascii_flag, 0 if os.isatty(0) else None)
    if i18n.language() == "ja" and not shown:
        log.warning("Japanese asked for, but %s: English is used", why)
        i18n.set_language("en")
    return shown, why


def run_tui(args: Any) -> int:
    ui_started = boot_times.now()
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
            msg = _("cannot write the log {path} ({error}): set ENGINE_INSTALLER_LOG")
            raise UserError(msg.format(path=log_path, error=err)) from None
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        root.addHandler(handler)
    ascii_mode = ascii_wanted(args.ascii)
    log.info(
        "start: dry_run=%s profile=%s source=%s language=%s",
        args.dry_run,
        args.profile,
        args.source,
        i18n.language(),
    )
    shown, why = choose_console_language(ascii_mode)
    app = InstallerApp(
        backend,
        Plan(source=args.source),
        ascii=ascii_mode,
        japanese=shown,
        japanese_why_not=why,
    )
    if not args.dry_run and (times := boot_times.report(ui_started, console_name())):
        # Before the first frame, which clears the screen: the console log keeps the line.
        print(times, flush=True)
        log.info("%s", times)
    code = app.run()
    if app.exit_message:
        print(app.exit_message)
    return code
