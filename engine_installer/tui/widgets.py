"""Reusable widgets: buttons, rows and check boxes whose focus shows without colour, a scrolling
area, the spinner, the text progress bar; widths in terminal cells (a Japanese character is two).

Everything draws in plain ASCII when the app runs in ASCII mode (serial terminals).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import urwid
from urwid import calc_width

from engine_installer.base.i18n import _

# Set once by the app before any widget is built. "ascii": serial terminals, no line drawing;
# "plain_glyphs": the Linux console (TERM=linux), whose VGA font has the box-drawing and
# block characters of CP437 but no braille, ellipsis, em dash or check mark.
ASCII = {"ascii": False, "plain_glyphs": False}

# The focus is drawn in the focus colours and, for terminals without colour, by markers:
# "> Back <" for a button (otherwise "< Back >") and "> " before a row or check box.
FOCUS_MARK = "> "
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
    ("scroll", "light cyan", "black"),
]

_ASCII_MAP = str.maketrans(
    {"…": "...", "—": "-", "–": "-", "•": "*", "✓": "+", "×": "x", "→": "->", "▲": "^", "▼": "v"}
)


def t(text: str) -> str:
    """Text as drawn: typographic characters become ASCII on serial terminals."""
    return text.translate(_ASCII_MAP) if ASCII["ascii"] or ASCII["plain_glyphs"] else text


def width(text: str) -> int:
    """Terminal cells text takes (East Asian wide characters count two)."""
    return calc_width(text, 0, len(text))


def fit(text: str, cells: int) -> str:
    """text cut to at most `cells` cells (with … when cut), padded with spaces to exactly that."""
    if width(text) > cells:
        out, used = "", 0
        for char in text:
            w = width(char)
            if used + w > cells - 1:
                break
            out, used = out + char, used + w
        text = out + t("…")
    return text + " " * (cells - width(text))


def text(markup: Any, align: str = "left") -> urwid.Text:
    if isinstance(markup, str):
        markup = t(markup)
    elif isinstance(markup, tuple):
        markup = (markup[0], t(markup[1]))
    elif isinstance(markup, list):
        markup = [(m[0], t(m[1])) if isinstance(m, tuple) else t(m) for m in markup]
    return urwid.Text(markup, align=align)


def field_rows(rows: Sequence[tuple[str, Any]], minimum: int = 0) -> list[urwid.Widget]:
    """'Label:  value' lines with the values aligned after the widest label (in cells)."""
    cells = max([minimum, *(width(label) for label, _value in rows)]) + 2
    return [urwid.Columns([(cells, text(label)), text(value)]) for label, value in rows]


class Button(urwid.WidgetWrap):
    """'< Label >', drawn '> Label <' while focused; Enter or Space presses it."""

    def __init__(self, label: str, on_press: Callable[[Any], None] | None = None):
        self.name = label  # the untranslated-or-translated label as shown, for tests
        self.label = t(label)
        self._on_press = on_press
        self._text = urwid.Text(f"< {self.label} >", wrap="clip")
        super().__init__(urwid.AttrMap(self._text, "button", "button focus"))

    @property
    def cells(self) -> int:
        return width(self.label) + 4

    def selectable(self) -> bool:
        return True

    def render(self, size: tuple[int, ...], focus: bool = False) -> urwid.Canvas:
        wanted = f"> {self.label} <" if focus else f"< {self.label} >"
        if self._text.text != wanted:
            self._text.set_text(wanted)
        return super().render(size, focus)

    def get_cursor_coords(self, size: tuple[int, ...]) -> tuple[int, int] | None:
        return (0, 0)

    def keypress(self, size: tuple[int, ...], key: str) -> str | None:
        if key in ("enter", " "):
            self.press()
            return None
        return key

    def press(self) -> None:
        if self._on_press is not None:
            self._on_press(self)


def button(label: str, on_press: Callable[[Any], None] | None = None) -> Button:
    return Button(label, on_press)


class ButtonRow(urwid.Columns):
    """Buttons side by side. Arriving with Up/Down keeps the button the screen focused (the
    safe one, or the one a tick made the way on); urwid would pick the one under the cursor."""

    def move_cursor_to_coords(self, size: tuple[int, ...], col: Any, row: int) -> bool:
        return True


def button_row(buttons: Sequence[Button], focus: int = 0) -> urwid.Columns:
    """Buttons side by side, sized to their labels, with one focused (the safe one)."""
    cells = [(b.cells, b) for b in buttons]
    return ButtonRow(cells, dividechars=2, focus_column=focus)


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


class Marked(urwid.WidgetWrap):
    """A selectable widget with '> ' before it while it has the focus (visible in ASCII too)."""

    def __init__(self, widget: urwid.Widget, attr: str = "item", focus_attr: str = "item focus"):
        self._mark = urwid.Text("  ")
        self.inner = widget
        super().__init__(
            urwid.Columns(
                [(2, self._mark), urwid.AttrMap(widget, attr, focus_attr)], focus_column=1
            )
        )

    def render(self, size: tuple[int, ...], focus: bool = False) -> urwid.Canvas:
        wanted = FOCUS_MARK if focus else "  "
        if self._mark.text != wanted:
            self._mark.set_text(wanted)
        return super().render(size, focus)


class CheckBox(Marked):
    """A check box whose focus is visible whether it is ticked or not."""

    def __init__(self, label: str, state: bool = False):
        self.box = urwid.CheckBox(t(label), state=state)
        super().__init__(self.box)

    def get_state(self) -> bool:
        return self.box.get_state()

    def set_state(self, state: bool) -> None:
        self.box.set_state(state)


class SelectableItem(urwid.WidgetWrap):
    """One line in a list that can be focused and chosen with Enter (or Space)."""

    def __init__(self, label: str, value: Any, on_activate: Callable[[Any], None]):
        self.value = value
        self.label = label
        self._on_activate = on_activate
        icon = urwid.SelectableIcon(t(label), 0)
        super().__init__(Marked(icon))

    def selectable(self) -> bool:
        return True

    def keypress(self, size: tuple[int, ...], key: str) -> str | None:
        if key in ("enter", " "):
            self._on_activate(self.value)
            return None
        return key


class Scroller(urwid.Widget):
    """A box showing a column of flow widgets that may be taller than the box: it follows the
    focus, PgUp/PgDn scroll it, and a bar on the right says where the view is."""

    _sizing = frozenset([urwid.Sizing.BOX])

    def __init__(self, rows: Sequence[urwid.Widget]):
        super().__init__()
        self.pile = urwid.Pile(list(rows))
        self.top = 0
        self._follow = True
        self.overflow = False  # the content was taller than the box at the last render

    def selectable(self) -> bool:
        # Any selectable row counts (a Pile only asks its focus row, which may be text).
        return bool(self._selectable_positions())

    def _focus_span(self, cols: int) -> tuple[int, int]:
        start = 0
        for index, (widget, _opts) in enumerate(self.pile.contents):
            rows = widget.rows((cols,), index == self.pile.focus_position)
            if index == self.pile.focus_position:
                return start, rows
            start += rows
        return 0, 0

    def render(self, size: tuple[int, int], focus: bool = False) -> urwid.Canvas:
        cols, rows = size
        inner = cols - 1
        canvas = urwid.CompositeCanvas(self.pile.render((inner,), focus))
        total = canvas.rows()
        self.overflow = total > rows
        if not self.overflow:
            self.top = 0
            canvas.pad_trim_top_bottom(0, rows - total)
        else:
            if self._follow and self.selectable():
                start, height = self._focus_span(inner)
                if start < self.top:
                    self.top = start
                elif start + height > self.top + rows:
                    self.top = start + height - rows
            self.top = max(0, min(self.top, total - rows))
            canvas.trim(self.top, rows)
        bar = urwid.CompositeCanvas(urwid.Text(self._bar(rows, total)).render((1,)))
        return urwid.CanvasJoin([(canvas, None, focus, inner), (bar, None, False, 1)])

    def _bar(self, rows: int, total: int) -> list[tuple[str, str]] | str:
        if total <= rows:
            return "\n".join(" " * rows)
        plain = ASCII["ascii"]
        thumb = max(1, rows * rows // total)
        first = min(rows - thumb, self.top * rows // total)
        if self.top + rows >= total:
            first = rows - thumb
        cells = []
        for row in range(rows):
            if row == 0 and self.top > 0:
                cells.append("^" if plain else "▲")
            elif row == rows - 1 and self.top + rows < total:
                cells.append("v" if plain else "▼")
            elif first <= row < first + thumb:
                cells.append("#" if plain else "█")
            else:
                cells.append("|" if plain else "│")
        return [("scroll", "\n".join(cells))]

    def scroll(self, rows: int, size: tuple[int, int]) -> bool:
        """Scroll by rows (negative: up); False when already at that end."""
        before = self.top
        total = self.pile.rows((size[0] - 1,))
        self.top = max(0, min(self.top + rows, max(0, total - size[1])))
        self._follow = False
        self._invalidate()
        return self.top != before

    def refresh(self) -> None:
        """After a row's widget was swapped (a WidgetPlaceholder): urwid's Pile caches
        whether it holds anything selectable, and recomputes only when its contents change."""
        self.pile.contents[:] = list(self.pile.contents)

    def _selectable_positions(self) -> list[int]:
        return [i for i, (w, _o) in enumerate(self.pile.contents) if w.selectable()]

    def move_cursor_to_coords(self, size: tuple[int, int], col: Any, row: Any) -> bool:
        """The focus arrives from outside: from below (the last row) it goes to the last
        selectable widget, from above to the first."""
        positions = self._selectable_positions()
        if not positions:
            return False
        from_below = isinstance(row, int) and row >= size[1] - 1
        self.pile.focus_position = positions[-1] if from_below else positions[0]
        self._follow = True
        self._invalidate()
        return True

    def keypress(self, size: tuple[int, int], key: str) -> str | None:
        if key in ("page up", "page down"):
            step = max(1, size[1] - 1)
            self.scroll(-step if key == "page up" else step, size)
            return None
        positions = self._selectable_positions()
        if positions and self.pile.focus_position not in positions:
            self.pile.focus_position = positions[0]  # a widget that appeared after the build
        self._follow = True
        self._invalidate()
        result = self.pile.keypress((size[0] - 1,), key) if positions else key
        if result in ("up", "down") and self.scroll(-1 if result == "up" else 1, size):
            return None  # nothing to move to that way: the arrow scrolls the text
        return result

    def get_cursor_coords(self, size: tuple[int, int]) -> tuple[int, int] | None:
        return None


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


def bar_markup(fraction: float, cells: int) -> list[tuple[str, str]]:
    """A progress bar as text markup: cells filled in proportion, percent after it."""
    fraction = min(max(fraction, 0.0), 1.0)
    filled = int(fraction * cells)
    fill, todo = ("#", ".") if ASCII["ascii"] else ("█", "░")
    return [
        ("bar done", fill * filled),
        ("bar todo", todo * (cells - filled)),
        ("body", f" {fraction * 100:5.1f}%"),
    ]


def size_text(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return ""


def gb(size: int) -> str:
    return f"{size / 1e9:.1f} GB"


def time_left(seconds: float) -> str:
    """'about 4 s left', 'about 3 min left'."""
    if seconds < 90:
        return _("about {seconds} s left").format(seconds=max(1, round(seconds)))
    return _("about {minutes} min left").format(minutes=round(seconds / 60))
