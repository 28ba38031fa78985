"""Reusable widgets: buttons, button rows, boxes, spinner, text progress bar, searchable list.

Everything draws in plain ASCII when the app runs in ASCII mode (serial terminals).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import urwid

# Set once by the app before any widget is built. "ascii": serial terminals, no line drawing;
# "plain_glyphs": the Linux console (TERM=linux), whose VGA font has the box-drawing and
# block characters of CP437 but no braille, ellipsis, em dash or check mark.
ASCII = {"ascii": False, "plain_glyphs": False}

PALETTE = [
    ("header", "white", "dark blue"),
    ("footer", "black", "light gray"),
    ("body", "light gray", "black"),
    ("title", "white,bold", "black"),
    ("button", "light gray", "black"),
    ("button focus", "black", "light cyan"),
    ("item", "light gray", "black"),
    ("item focus", "black", "light cyan"),
    ("dim", "dark gray", "black"),
    ("warn", "yellow,bold", "black"),
    ("error", "light red,bold", "black"),
    ("good", "light green,bold", "black"),
    ("bar done", "black", "light cyan"),
    ("bar todo", "light gray", "dark gray"),
    ("edit", "white", "dark gray"),
]

_ASCII_MAP = str.maketrans(
    {"…": "...", "—": "-", "–": "-", "•": "*", "✓": "+", "×": "x", "→": "->"}
)


def t(text: str) -> str:
    """Text as drawn: typographic characters become ASCII on serial terminals."""
    return text.translate(_ASCII_MAP) if ASCII["ascii"] or ASCII["plain_glyphs"] else text


def text(markup: Any, align: str = "left") -> urwid.Text:
    if isinstance(markup, str):
        markup = t(markup)
    elif isinstance(markup, tuple):
        markup = (markup[0], t(markup[1]))
    elif isinstance(markup, list):
        markup = [(m[0], t(m[1])) if isinstance(m, tuple) else t(m) for m in markup]
    return urwid.Text(markup, align=align)


class PlainButton(urwid.Button):
    """A button drawn as '< Label >' in both modes; keeps its label for tests."""

    def __init__(self, label: str, on_press: Callable[[Any], None] | None = None):
        super().__init__(t(label), on_press=on_press)
        self.name = label


def button(label: str, on_press: Callable[[Any], None] | None = None) -> urwid.AttrMap:
    widget = urwid.AttrMap(PlainButton(label, on_press), "button", "button focus")
    return widget


def button_row(buttons: Sequence[urwid.Widget], focus: int = 0) -> urwid.Columns:
    """Buttons side by side, sized to their labels, with one focused (the safe one)."""
    cells = [(len(b.base_widget.get_label()) + 4, b) for b in buttons]
    return urwid.Columns(cells, dividechars=2, focus_column=focus)


def row_labels(row: urwid.Columns) -> list[str]:
    return [w.base_widget.name for w, _opts in row.contents]


def focused_label(row: urwid.Columns) -> str:
    return row.focus.base_widget.name


def box(widget: urwid.Widget, title: str = "") -> urwid.LineBox:
    if ASCII["ascii"]:
        return urwid.LineBox(
            widget,
            title=t(title),
            tlcorner="+",
            tline="-",
            lline="|",
            trcorner="+",
            blcorner="+",
            rline="|",
            bline="-",
            brcorner="+",
        )
    return urwid.LineBox(widget, title=title)


class Spinner(urwid.Text):
    FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
    ASCII_FRAMES = "|/-\\"

    def __init__(self, label: str):
        self.label = t(label)
        self.frame = 0
        super().__init__("")
        self.tick()

    def tick(self) -> None:
        plain = ASCII["ascii"] or ASCII["plain_glyphs"]
        frames = self.ASCII_FRAMES if plain else self.FRAMES
        self.set_text(("warn", f"{frames[self.frame % len(frames)]} {self.label}"))
        self.frame += 1


def bar_markup(fraction: float, width: int) -> list[tuple[str, str]]:
    """A progress bar as text markup: cells filled in proportion, percent after it."""
    fraction = min(max(fraction, 0.0), 1.0)
    filled = int(round(fraction * width))
    fill, todo = ("#", ".") if ASCII["ascii"] else ("█", "░")
    return [
        ("bar done", fill * filled),
        ("bar todo", todo * (width - filled)),
        ("body", f" {fraction * 100:5.1f}%"),
    ]


class SelectableItem(urwid.WidgetWrap):
    """One line in a list that can be focused and chosen with Enter."""

    signals = ["activate"]

    def __init__(self, label: str, value: Any, on_activate: Callable[[Any], None]):
        self.value = value
        self.label = label
        self._on_activate = on_activate
        super().__init__(
            urwid.AttrMap(urwid.SelectableIcon(t("  " + label), 0), "item", "item focus")
        )

    def selectable(self) -> bool:
        return True

    def keypress(self, size: tuple[int], key: str) -> str | None:
        if key in ("enter", " "):
            self._on_activate(self.value)
            return None
        return key


def size_text(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return ""


def gb(size: int) -> str:
    return f"{size / 1e9:.1f} GB"
