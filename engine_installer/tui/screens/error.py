"""Error: one clear sentence, the log path, and a way on: Back (the disks are probed again,
so a refusal that no longer holds goes away), Shell, Reboot, Power off."""

from __future__ import annotations

from typing import Any

import urwid

from engine_installer.tui import widgets as W
from engine_installer.tui.screens.base import Screen, pile


class ErrorScreen(Screen):
    title = "Error"
    allows_back = False
    hints = "Arrows/Tab: move   Enter: select"

    def __init__(self, app: Any, retry: str | None):
        self.retry_step = retry
        super().__init__(app)

    def build(self) -> urwid.Widget:
        message = self.app.error.rstrip(".") + "."
        rows: list[Any] = [
            urwid.Divider(),
            W.text(("error", "The installer could not finish:")),
            urwid.Divider(),
            W.text(message[:1].upper() + message[1:]),
            urwid.Divider(),
            W.text(f"Details are in the log: {self.app.backend.log_path}"),
            urwid.Divider(),
        ]
        buttons = []
        if self.retry_step:
            buttons.append(W.button("Back", self.retry))
        buttons += [
            W.button("Shell", lambda _b: self.app.shell()),
            W.button("Reboot", lambda _b: self.app.power("reboot")),
            W.button("Power off", lambda _b: self.app.power("poweroff")),
        ]
        self.buttons = W.button_row(buttons, focus=0)
        rows.append(self.buttons)
        return pile(rows, focus=len(rows) - 1)

    def retry(self, *_args: Any) -> None:
        if self.retry_step == "start":
            self.app.start()
            return
        if self.retry_step in ("detect", "summary"):
            # Probe again: what failed may be gone (a disk released), or the disk changed.
            self.app.machine = None
            self.app.chosen = None
            self.app.plan.target = None
            self.app.plan.confirmed = False
            self.app.sequencer.goto("detect")
            return
        self.app.sequencer.goto(self.retry_step)
