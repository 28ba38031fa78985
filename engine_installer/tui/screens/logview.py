"""View log: the installer's log in the UI, scrollable, opened from the error and Finished
screens; Back (or Esc) returns to the screen it was opened from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import urwid

from engine_installer.base.i18n import N_, _
from engine_installer.tui import widgets as W
from engine_installer.tui.screens.base import Screen

MAX_BYTES = 512 * 1024  # the end of a long log is what matters after a failure


def log_lines(path: Path) -> list[str]:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - MAX_BYTES))
            data = handle.read()
    except OSError as err:
        return [_("The log cannot be read: {error}").format(error=err)]
    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > MAX_BYTES:
        lines[0] = _("… (the beginning is in the file)")
    return lines or [_("(the log is empty)")]


class LogScreen(Screen):
    title = N_("Log")
    hints = N_("Up/Down, PgUp/PgDn: scroll   Enter or Esc: back")

    def __init__(self, app: Any, previous: Screen | None):
        self.previous = previous
        super().__init__(app)

    def build(self) -> urwid.Widget:
        path = self.app.backend.log_path
        lines = [W.text(line) for line in log_lines(Path(path))]
        for line in lines:
            line.set_wrap_mode("any")
        self.list = urwid.ListBox(urwid.SimpleFocusListWalker(lines))
        self.list.set_focus(len(lines) - 1)  # the end: where a failure is
        self.buttons = W.button_row([W.button(_("Back"), self.go_back)], focus=0)
        return _LogKeys(
            self.layout([W.text(("dim", str(path)))], self.buttons, fill=self.list), self.list
        )

    def go_back(self, *_args: Any) -> None:
        if self.previous is not None:
            self.app.show(self.previous)

    def escape(self) -> bool:
        self.go_back()
        return True


class _LogKeys(urwid.WidgetWrap):
    """Up/Down and PgUp/PgDn scroll the log whatever has the focus."""

    def __init__(self, layout: urwid.Widget, lines: urwid.ListBox):
        super().__init__(layout)
        self._lines = lines

    def keypress(self, size: tuple[int, int], key: str) -> str | None:
        if key in ("up", "down", "page up", "page down", "home", "end"):
            pile = self._w._w
            fixed = sum(w.rows((size[0],)) for w, (kind, _n) in pile.contents if kind == "pack")
            box = (size[0], max(1, size[1] - fixed))
            if key == "home":
                self._lines.set_focus(0)
            elif key == "end":
                self._lines.set_focus(len(self._lines.body) - 1)
            else:
                self._lines.keypress(box, key)
            return None
        return super().keypress(size, key)
