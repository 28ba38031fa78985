"""Screen 4, keyboard layout: human names in the screens' language, searchable by name or code,
the current layout (or the usual one for the language) first; the choice is applied to the
console at once and goes into the plan for the installed Engine."""

from __future__ import annotations

import logging

import urwid

from engine_installer.base.i18n import N_, _
from engine_installer.machine.keyboards import (
    LANGUAGE_LAYOUTS,
    available_layouts,
    layout_matches,
    layout_name,
)
from engine_installer.tui import widgets as W
from engine_installer.tui.screens.base import Screen

log = logging.getLogger("engine_installer.tui")
NAME_CELLS = 48  # the name column; the code follows it


class KeyboardScreen(Screen):
    title = N_("4/5 Keyboard layout")
    hints = N_("Type to search   Up/Down: move   Enter: choose   Esc: back")

    def build(self) -> urwid.Widget:
        self.layouts = self.ordered(available_layouts())
        self.failed_layout = ""
        self.search = urwid.Edit(W.t(_("Search: ")))
        urwid.connect_signal(self.search, "postchange", lambda *_args: self.refilter())
        self.walker = urwid.SimpleFocusListWalker([])
        self.list = urwid.ListBox(self.walker)
        self.buttons = W.button_row([W.button(_("Back"), self.go_back)], focus=0)
        self.refilter()
        current = self.session.plan.keyboard
        name = layout_name(current)
        shown = f"{name} ({current})" if name else current
        widget = self.layout(
            [
                W.text(
                    _(
                        "Current layout: {layout}. Choose the layout of this laptop's keyboard; "
                        "it applies at once and to the installed Engine. Type a name or a code "
                        "to search."
                    ).format(layout=shown)
                ),
                urwid.AttrMap(self.search, "edit"),
                urwid.Divider(),
            ],
            self.buttons,
            fill=self.list,
            focus="fill",
        )
        return _TypeToSearch(widget, self)

    def ordered(self, layouts: list[str]) -> list[str]:
        """The current layout first, then the usual one for the language (until a layout has
        been chosen, the usual one leads), then named layouts by name, then the rest by code."""
        plan = self.session.plan
        usual = LANGUAGE_LAYOUTS.get(self.session.language, "us")
        first = [plan.keyboard, usual]
        if usual != plan.keyboard and not self.session.keyboard_chosen:
            first = [usual, plan.keyboard]
        first = [code for code in dict.fromkeys(first) if code in layouts]
        named = sorted(
            (c for c in layouts if c not in first and layout_name(c)),
            key=lambda c: (layout_name(c).casefold(), c),
        )
        rest = [c for c in layouts if c not in first and c not in named]
        return first + named + rest

    def matching(self) -> list[str]:
        query = self.search.edit_text
        scored = [(layout_matches(code, query), i, code) for i, code in enumerate(self.layouts)]
        ranked = sorted(scored, key=lambda s: (-s[0], s[1]))
        return [code for score, _i, code in ranked if score]

    @staticmethod
    def label(code: str) -> str:
        name = layout_name(code)
        if not name:
            return code
        return W.fit(name, NAME_CELLS) + " " + code

    def refilter(self) -> None:
        names = self.matching()
        self.walker[:] = [W.SelectableItem(self.label(code), code, self.choose) for code in names]
        if not names:
            self.walker[:] = [urwid.Text(W.t(_("  (no layout matches)")))]
            return
        self.walker.set_focus(0)

    def focused_layout(self) -> str | None:
        item = self.list.focus
        return getattr(item, "value", None)

    def choose(self, layout: str) -> None:
        self.session.plan.keyboard = layout
        self.session.keyboard_chosen = True
        if layout == self.failed_layout:  # the technician saw the warning and goes on
            self.app.forward()
            return
        self.say(("dim", _("Applying {layout}…").format(layout=layout)))
        self.app.background(
            lambda: self.app.backend.apply_keyboard(layout),
            lambda _result: self.applied(layout),
            self.not_applied,
        )

    def applied(self, layout: str) -> None:
        log.info("keyboard layout %s applied", layout)
        if self.app.screen is self:
            self.app.forward()

    def not_applied(self, message: str) -> None:
        # The installed Engine still gets the layout; only the live console could not switch.
        self.failed_layout = self.session.plan.keyboard
        log.warning("keyboard not applied to the console: %s", message)
        self.say(
            (
                "warn",
                _("{error}. The installed Engine still gets it: Enter to go on.").format(
                    error=message
                ),
            )
        )


class _TypeToSearch(urwid.WidgetWrap):
    """Letters typed anywhere on the screen go to the search field."""

    def __init__(self, layout: urwid.Widget, screen: KeyboardScreen):
        super().__init__(layout)
        self._screen = screen

    def keypress(self, size: tuple[int, int], key: str) -> str | None:
        search = self._screen.search
        if not isinstance(key, str):
            return super().keypress(size, key)
        if len(key) == 1 and key.isprintable() and key != " ":
            search.insert_text(key)
            return None
        if key == "backspace":
            search.set_edit_text(search.edit_text[:-1])
            return None
        return super().keypress(size, key)
