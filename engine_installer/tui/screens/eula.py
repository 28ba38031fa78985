"""Screen 3, licence agreement: the full text, scrollable; Back focused; only Accept goes on."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import urwid

from engine_installer.base.errors import UserError
from engine_installer.tui import widgets as W
from engine_installer.tui.screens.base import Screen, pile

EULA_ENV = "ENGINE_INSTALLER_EULA"
SYSTEM_EULA = Path("/usr/share/engine-installer/eula.txt")
# In a repository checkout the text lives in iso-build/ beside the package.
CHECKOUT_EULA = Path(__file__).resolve().parents[3] / "iso-build" / "eula.txt"


def find_eula() -> Path:
    override = os.environ.get(EULA_ENV)
    candidates = [Path(override)] if override else [CHECKOUT_EULA, SYSTEM_EULA]
    for path in candidates:
        if path.is_file():
            return path
    raise UserError(
        f"the licence text is missing (looked at {', '.join(map(str, candidates))}): "
        f"rebuild the medium or set {EULA_ENV}"
    )


def eula_paragraphs(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return [
        " ".join(p.split()) if not p.startswith(" ") else p.rstrip()
        for p in text.split("\n\n")
        if p.strip()
    ]


class EulaScreen(Screen):
    title = "3/5 Licence agreement"
    hints = "PgUp/PgDn: scroll   Arrows/Tab: move   Enter: select   Esc: back"

    def build(self) -> urwid.Widget:
        paragraphs = eula_paragraphs(find_eula())
        rows: list[urwid.Widget] = []
        for para in paragraphs:
            rows += [W.text(para), urwid.Divider()]
        self.text = urwid.ListBox(urwid.SimpleFocusListWalker(rows))
        self.back_button = W.button("Back", self.go_back)
        self.accept_button = W.button("Accept", self.accept)
        self.buttons = W.button_row([self.back_button, self.accept_button], focus=0)
        self.layout = pile(
            [
                ("weight", 1, self.text),
                urwid.Divider("-" if W.ASCII["ascii"] else "─"),
                W.text("Read the agreement (PgUp/PgDn). Accept it to continue."),
                self.buttons,
            ],
            focus=3,
        )
        return _Scrolling(self.layout, self.text)

    def accept(self, *_args: Any) -> None:
        self.app.plan.eula_accepted = True
        self.app.forward()


class _Scrolling(urwid.WidgetWrap):
    """PgUp/PgDn scroll the agreement wherever the focus is."""

    def __init__(self, layout: urwid.Pile, text: urwid.ListBox):
        super().__init__(layout)
        self._text = text

    def keypress(self, size: tuple[int, int], key: str) -> str | None:
        if key in ("page up", "page down"):
            rows = size[1] - 3  # the rows the list box gets inside the pile
            self._text.keypress((size[0], rows), key)
            return None
        return super().keypress(size, key)
