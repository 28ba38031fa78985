"""Screen 4, keyboard layout: a searchable list; the choice is applied to the console at once."""

from __future__ import annotations

import logging

import urwid

from engine_installer.machine.keyboards import available_layouts
from engine_installer.tui import widgets as W
from engine_installer.tui.screens.base import Screen, pile

log = logging.getLogger("engine_installer.tui")


class KeyboardScreen(Screen):
    title = "4/5 Keyboard layout"
    hints = "Type to search   Up/Down: move   Enter: choose   Esc: back"

    def build(self) -> urwid.Widget:
        self.layouts = available_layouts()
        self.failed_layout = ""
        self.search = urwid.Edit(W.t("Search: "))
        urwid.connect_signal(self.search, "postchange", lambda *_: self.refilter())
        self.walker = urwid.SimpleFocusListWalker([])
        self.list = urwid.ListBox(self.walker)
        self.buttons = W.button_row([W.button("Back", self.go_back)], focus=0)
        self.refilter(keep=self.app.plan.keyboard)
        self.layout = pile(
            [
                W.text(
                    f"Current layout: {self.app.plan.keyboard}. Choose the layout of this "
                    "laptop's keyboard; it applies at once and to the installed Engine."
                ),
                urwid.AttrMap(self.search, "edit"),
                urwid.Divider(),
                ("weight", 1, self.list),
                self.message,
                self.buttons,
            ],
            focus=3,
        )
        return _TypeToSearch(self.layout, self)

    def matching(self) -> list[str]:
        query = self.search.edit_text.strip().lower()
        if not query:
            return self.layouts
        starts = [name for name in self.layouts if name.lower().startswith(query)]
        within = [name for name in self.layouts if query in name.lower() and name not in starts]
        return starts + within

    def refilter(self, keep: str | None = None) -> None:
        names = self.matching()
        self.walker[:] = [W.SelectableItem(name, name, self.choose) for name in names]
        if not names:
            self.walker[:] = [urwid.Text(W.t("  (no layout matches)"))]
            return
        # The current layout while browsing, else the best match (prefix matches come first).
        self.walker.set_focus(names.index(keep) if keep in names else 0)

    def focused_layout(self) -> str | None:
        item = self.list.focus
        return getattr(item, "value", None)

    def choose(self, layout: str) -> None:
        self.app.plan.keyboard = layout
        if layout == self.failed_layout:  # the technician saw the warning and goes on
            self.app.forward()
            return
        self.say(("dim", f"Applying {layout}…"))
        self.app.background(
            lambda: self.app.backend.apply_keyboard(layout),
            lambda _r: self.applied(layout),
            self.not_applied,
        )

    def applied(self, layout: str) -> None:
        log.info("keyboard layout %s applied", layout)
        if self.app.screen is self:
            self.app.forward()

    def not_applied(self, message: str) -> None:
        # The installed Engine still gets the layout; only the live console could not switch.
        self.failed_layout = self.app.plan.keyboard
        log.warning("keyboard not applied to the console: %s", message)
        self.say(("warn", f"{message}. The installed Engine still gets it: Enter to go on."))


class _TypeToSearch(urwid.WidgetWrap):
    """Letters typed anywhere on the screen go to the search field."""

    def __init__(self, layout: urwid.Pile, screen: KeyboardScreen):
        super().__init__(layout)
        self._screen = screen

    def keypress(self, size: tuple[int, int], key: str) -> str | None:
        search = self._screen.search
        if self._w.focus is not self._screen.list or not isinstance(key, str):
            return super().keypress(size, key)
        if len(key) == 1 and key.isprintable():
            search.insert_text(key)
            return None
        if key == "backspace":
            search.set_edit_text(search.edit_text[:-1])
            return None
        return super().keypress(size, key)
