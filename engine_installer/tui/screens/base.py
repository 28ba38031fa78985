"""What every screen has: a title, key hints, a widget, and back/forward through the app.

A screen's layout is its content (which scrolls when it does not fit: a hardware-check list
in Japanese may be longer than 24 rows), a message line and its buttons, which always stay
visible. PgUp/PgDn scroll the content wherever the focus is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import urwid

from engine_installer.base.i18n import N_, _
from engine_installer.tui import widgets as W

HINTS = N_("Arrows/Tab: move   Enter: select   Esc: back   PgUp/PgDn: scroll")


class Screen:
    title = ""  # marked with N_(); translated when shown
    hints = HINTS
    allows_back = True

    def __init__(self, app: Any):
        self.app = app
        self.session = app.session
        self.message = urwid.Text("")
        self.scroller: W.Scroller | None = None
        self.widget: urwid.Widget = self.build()

    def build(self) -> urwid.Widget:
        raise NotImplementedError

    def on_show(self) -> None:
        """Called once the widget is on screen (start background work here)."""

    def go_back(self, *_args: Any) -> None:
        if self.allows_back:
            self.app.back()

    def say(self, markup: Any) -> None:
        if isinstance(markup, tuple):
            markup = (markup[0], W.t(markup[1]))
        self.message.set_text(markup)

    def escape(self) -> bool:
        """Esc pressed with nothing in the screen taking it: Back where allowed."""
        if self.allows_back:
            self.go_back()
            return True
        return False

    def layout(
        self,
        content: Sequence[urwid.Widget],
        buttons: urwid.Widget | None = None,
        *,
        fill: urwid.Widget | None = None,
        focus: str = "buttons",
    ) -> urwid.Widget:
        """content rows (scrolling), then the message and the buttons.

        With fill (a list box that scrolls itself), content is a short heading above it and
        the list takes the remaining rows. focus: "buttons", "content" or "fill"."""
        rows: list[Any] = []
        if fill is None:
            self.scroller = W.Scroller(content)
            rows.append(("weight", 1, self.scroller))
            content_index = 0
        else:
            rows += [("pack", w) for w in content]
            rows.append(("weight", 1, fill))
            content_index = len(rows) - 1
        rows.append(("pack", self.message))
        if buttons is not None:
            rows.append(("pack", buttons))
        pile = urwid.Pile(rows)
        wanted = {"content": content_index, "fill": content_index}.get(focus, len(rows) - 1)
        if buttons is None or not pile.contents[wanted][0].selectable():
            wanted = next((i for i, (w, _o) in enumerate(pile.contents) if w.selectable()), 0)
        pile.focus_position = wanted
        return ScreenKeys(pile, self)


class ScreenKeys(urwid.WidgetWrap):
    """PgUp/PgDn scroll the content from anywhere; an arrow nothing took scrolls it too."""

    def __init__(self, pile: urwid.Pile, screen: Screen):
        super().__init__(pile)
        self.screen = screen

    def keypress(self, size: tuple[int, int], key: str) -> str | None:
        scroller = self.screen.scroller
        if scroller is not None and key in ("page up", "page down", "up", "down"):
            rows = self._scroller_rows(size)
            if key.startswith("page"):
                return scroller.keypress((size[0], rows), key)
            result = super().keypress(size, key)
            step = -1 if key == "up" else 1
            if result in ("up", "down") and scroller.scroll(step, (size[0], rows)):
                return None
            return result
        return super().keypress(size, key)

    def _scroller_rows(self, size: tuple[int, int]) -> int:
        pile: urwid.Pile = self._w
        fixed = sum(w.rows((size[0],)) for w, (kind, _n) in pile.contents if kind == "pack")
        return max(1, size[1] - fixed)


def title_of(screen: Screen) -> str:
    return _(screen.title) if screen.title else ""
