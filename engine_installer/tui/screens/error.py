"""Error: one clear sentence, the log path, and retry / shell / reboot."""

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
            buttons.append(W.button("Retry", self.retry))
        buttons += [
            W.button("Shell", lambda _b: self.app.shell()),
            W.button("Reboot", lambda _b: self.app.power("reboot")),
        ]
        self.buttons = W.button_row(buttons, focus=0)
        rows.append(self.buttons)
        return pile(rows, focus=len(rows) - 1)

    def retry(self, *_args: Any) -> None:
        if self.retry_step == "start":
            self.app.start()
            return
        if self.retry_step == "detect":
            self.app.detection = None
        self.app.sequencer.goto(self.retry_step)
