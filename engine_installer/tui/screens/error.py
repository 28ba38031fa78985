"""Error: one clear sentence, where the log is, and a way on: Back (the disks are probed again,
so a refusal that no longer holds goes away and a refused disk is shown as refused), View log,
Shell, Reboot, Power off.

After a failed install the log is saved where it outlives the reboot (the boot stick when it
is writable, else the ESP of the target disk; install/failure_log.py), and the screen says
where."""

from __future__ import annotations

import logging
from typing import Any

import urwid

from engine_installer.base.i18n import N_, _
from engine_installer.tui import widgets as W
from engine_installer.tui.screens.base import Screen

log = logging.getLogger("engine_installer.tui")


class ErrorScreen(Screen):
    title = N_("Error")
    allows_back = False
    hints = N_("Arrows/Tab: move   Enter: select   PgUp/PgDn: scroll")

    def build(self) -> urwid.Widget:
        message = self.session.error.rstrip(".") + "."
        log_path = self.app.backend.log_path
        self.where = W.text(_("Details are in the log: {path}").format(path=log_path))
        rows: list[Any] = [
            urwid.Divider(),
            W.text(("error", _("The installer could not finish:"))),
            urwid.Divider(),
            W.text(message[:1].upper() + message[1:]),
            urwid.Divider(),
            self.where,
        ]
        buttons = []
        if self.session.error_back:
            buttons.append(W.button(_("Back"), self.retry))
        buttons += [
            W.button(_("View log"), lambda _b: self.app.view_log()),
            W.button(_("Shell"), lambda _b: self.app.shell()),
            W.button(_("Reboot"), lambda _b: self.app.power("reboot")),
            W.button(_("Power off"), lambda _b: self.app.power("poweroff")),
        ]
        self.buttons = W.button_row(buttons, focus=0)
        if self.session.log_saved_to:
            self.where.set_text(W.t(self.session.log_saved_to))
        return self.layout(rows, self.buttons)

    def save_log(self, written: bool) -> None:
        """Save the log of the failed run where it outlives the reboot; say where."""
        prepared = self.session.prepared
        self.where.set_text(W.t(_("Saving the log…")))

        def saved(where: str) -> None:
            self.session.log_saved_to = where
            self.where.set_text(W.t(where))

        self.app.background(
            lambda: self.app.backend.save_log(prepared, written),
            saved,
            lambda problem: saved(
                _(
                    "The log could not be saved ({problem}); it is at {path} until the reboot."
                ).format(problem=problem, path=self.app.backend.log_path)
            ),
        )

    def retry(self, *_args: Any) -> None:
        back = self.session.error_back
        if back == "start":
            self.app.start()
            return
        # Probe again: what failed may be gone (a disk released), or the disk changed.
        self.session.forget_disks()
        self.session.log_saved_to = ""
        self.app.sequencer.goto("detect")
