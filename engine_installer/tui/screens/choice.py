"""Screen 1, install choice: 'Install Engine' (covers new installs and upgrades), reboot, off."""

from __future__ import annotations

import urwid

from engine_installer.tui import widgets as W
from engine_installer.tui.screens.base import Screen, pile


class ChoiceScreen(Screen):
    title = "1/5 Install choice"
    allows_back = False
    hints = "Up/Down: move   Enter: select"

    def build(self) -> urwid.Widget:
        self.items = [
            W.SelectableItem("Install Engine", "install", self.choose),
            W.SelectableItem("Reboot", "reboot", self.choose),
            W.SelectableItem("Power off", "poweroff", self.choose),
        ]
        self.menu = urwid.ListBox(urwid.SimpleFocusListWalker(self.items))
        return pile(
            [
                urwid.Divider(),
                W.text("Install Engine on this laptop, or upgrade the Engine already on it."),
                W.text("The installer finds an existing Engine by itself."),
                urwid.Divider(),
                ("weight", 1, self.menu),
            ],
            focus=4,
        )

    def choose(self, value: str) -> None:
        if value == "install":
            self.app.forward()
        else:
            self.app.power(value)
