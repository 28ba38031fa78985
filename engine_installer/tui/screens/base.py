"""What every screen has: a title, key hints, a widget, and back/forward through the app."""

from __future__ import annotations

from typing import Any

import urwid

HINTS = "Arrows/Tab: move   Enter: select   Esc: back"


class Screen:
    title = ""
    hints = HINTS
    allows_back = True

    def __init__(self, app: Any):
        self.app = app
        self.message = urwid.Text("")
        self.widget: urwid.Widget = self.build()

    def build(self) -> urwid.Widget:
        raise NotImplementedError

    def on_show(self) -> None:
        """Called once the widget is on screen (start background work here)."""

    def go_back(self, *_args: Any) -> None:
        if self.allows_back:
            self.app.back()

    def say(self, markup: Any) -> None:
        from engine_installer.tui.widgets import t

        if isinstance(markup, tuple):
            markup = (markup[0], t(markup[1]))
        self.message.set_text(markup)


def pile(rows: list[Any], focus: int | None = None) -> urwid.Pile:
    """A vertical layout of (pack) rows; list boxes given as ('weight', 1, w) fill the rest."""
    items = [r if isinstance(r, tuple) else ("pack", r) for r in rows]
    if not any(item[0] == "weight" for item in items):
        items.append(("weight", 1, urwid.SolidFill(" ")))  # so the pile can fill a box
    widget = urwid.Pile(items)
    if focus is not None:
        widget.focus_position = focus
    return widget
