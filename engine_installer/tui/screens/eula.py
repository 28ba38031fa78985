"""Screen 3, licence agreement: the full text in the screens' language (eula.<lang>.txt beside
the English eula.txt), scrollable; Back focused; only Accept goes on."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import urwid

from engine_installer.base.errors import UserError
from engine_installer.base.i18n import N_, _
from engine_installer.tui import widgets as W
from engine_installer.tui.screens.base import Screen

EULA_ENV = "ENGINE_INSTALLER_EULA"
SYSTEM_EULA = Path("/usr/share/engine-installer/eula.txt")
# In a repository checkout the text lives in iso-build/ beside the package.
CHECKOUT_EULA = Path(__file__).resolve().parents[3] / "iso-build" / "eula.txt"


def find_eula(language: str = "en") -> Path:
    override = os.environ.get(EULA_ENV)
    english = [Path(override)] if override else [CHECKOUT_EULA, SYSTEM_EULA]
    candidates = english
    if language != "en":
        translated = [p.with_name(f"{p.stem}.{language}{p.suffix}") for p in english]
        candidates = translated + english  # a missing translation falls back to English
    for path in candidates:
        if path.is_file():
            return path
    raise UserError(
        _(
            "the licence text is missing (looked at {paths}): rebuild the medium or set {env}"
        ).format(paths=", ".join(map(str, english)), env=EULA_ENV)
    )


def eula_paragraphs(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return [
        " ".join(p.split()) if not p.startswith(" ") else p.rstrip()
        for p in text.split("\n\n")
        if p.strip()
    ]


class EulaScreen(Screen):
    title = N_("3/5 Licence agreement")
    hints = N_("PgUp/PgDn: scroll   Arrows/Tab: move   Enter: select   Esc: back")

    def build(self) -> urwid.Widget:
        paragraphs = eula_paragraphs(find_eula(self.session.language))
        rows: list[urwid.Widget] = []
        for para in paragraphs:
            rows += [W.text(para), urwid.Divider()]
        self.text = urwid.ListBox(urwid.SimpleFocusListWalker(rows))
        self.back_button = W.button(_("Back"), self.go_back)
        self.accept_button = W.button(_("Accept"), self.accept)
        self.buttons = W.button_row([self.back_button, self.accept_button], focus=0)
        self.layout_pile = self.layout(
            [W.text(_("Read the agreement (PgUp/PgDn). Accept it to continue."))],
            self.buttons,
            fill=self.text,
        )
        return _Scrolling(self.layout_pile, self.text)

    def accept(self, *_args: Any) -> None:
        self.session.plan.eula_accepted = True
        self.app.forward()


class _Scrolling(urwid.WidgetWrap):
    """PgUp/PgDn scroll the agreement wherever the focus is."""

    def __init__(self, layout: urwid.Widget, text: urwid.ListBox):
        super().__init__(layout)
        self._text = text

    def keypress(self, size: tuple[int, int], key: str) -> str | None:
        if key in ("page up", "page down"):
            pile = self._w._w  # ScreenKeys around the layout pile
            fixed = sum(w.rows((size[0],)) for w, (kind, _n) in pile.contents if kind == "pack")
            self._text.keypress((size[0], max(1, size[1] - fixed)), key)
            return None
        return super().keypress(size, key)
