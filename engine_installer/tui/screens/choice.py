"""Screen 1, install choice: the language line, then 'Install Engine' (covers new installs and
upgrades), Reboot, Power off."""

from __future__ import annotations

import urwid

from engine_installer.base.i18n import LANGUAGES, N_, _
from engine_installer.tui import widgets as W
from engine_installer.tui.screens.base import Screen


class ChoiceScreen(Screen):
    title = N_("1/5 Install choice")
    allows_back = False
    hints = N_("Up/Down: move   Enter: select   Left/Right: language")

    def build(self) -> urwid.Widget:
        current = self.session.language
        self.languages = [
            W.SelectableItem(self.language_label(code, code == current), code, self.choose_language)
            for code in LANGUAGES
        ]
        self.language_row = urwid.Columns(
            [(W.width(item.label) + 3, item) for item in self.languages],
            dividechars=1,
            focus_column=list(LANGUAGES).index(current),
        )
        self.items = [
            W.SelectableItem(_("Install Engine"), "install", self.choose),
            W.SelectableItem(_("Reboot"), "reboot", self.choose),
            W.SelectableItem(_("Power off"), "poweroff", self.choose),
        ]
        self.menu = urwid.Pile(self.items)
        rows = [
            urwid.Columns(
                [("pack", W.text(self.language_prompt())), self.language_row], dividechars=1
            ),
            urwid.Divider(),
            W.text(_("Install Engine on this laptop, or upgrade the Engine already on it.")),
            W.text(_("The installer finds an existing Engine by itself.")),
            urwid.Divider(),
            self.menu,
        ]
        widget = self.layout(rows, focus="content")
        self.scroller.pile.focus_position = len(rows) - 1
        return widget

    def language_prompt(self) -> str:
        # Both languages' words, so either reader finds the line; none the console cannot draw.
        return "Language:" if self.app.japanese is False else "Language / 言語:"

    def language_label(self, code: str, chosen: bool) -> str:
        mark = "(*)" if chosen else "( )"
        name = LANGUAGES[code]
        if code == "ja" and self.app.japanese is False:
            name = "Japanese (not on this console)"
        elif code == "ja" and self.app.japanese is None:
            name = f"{name} (Japanese)"  # a serial terminal: asked when chosen
        return f"{mark} {name}"

    def choose_language(self, code: str) -> None:
        if code == self.session.language:
            return
        problem = self.app.set_language(code)
        if problem:
            self.say(("warn", problem))
            return
        self.app.redraw_frame()
        self.app.rebuild()
        # The new screen keeps the focus on the language line, where the technician is.
        screen = self.app.screen
        screen.scroller.pile.focus_position = 0

    def choose(self, value: str) -> None:
        if value == "install":
            self.app.forward()
        else:
            self.app.power(value)
