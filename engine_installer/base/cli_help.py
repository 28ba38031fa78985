"""--help that stays inside the terminal in Japanese too.

argparse wraps help text with textwrap, which counts characters; a Japanese character takes
two cells on a terminal, so its lines came out up to twice too wide. This parser wraps by
cells (East Asian wide characters count two) and may break between two wide characters,
where Japanese text has no spaces. Sub-command parsers inherit it (argparse makes them of the
parent's class).
"""

from __future__ import annotations

import argparse
import unicodedata

NO_LINE_START = ")）]」』、。，．・ー:：;；!！?？"


def cells(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in "WF"


def wrap_cells(text: str, width: int) -> list[str]:
    """Greedy wrap of text (whitespace collapsed) into lines of at most width cells."""
    text = " ".join(text.split())
    width = max(width, 10)
    lines: list[str] = []
    line = ""
    # Where the line may be broken: at a space, or before a wide character.
    for piece in _pieces(text):
        if piece == " ":
            if line:
                line += " "
            continue
        if cells(line) + cells(piece) <= width:
            line += piece
            continue
        carried = ""
        if piece[0] in NO_LINE_START and len(line.rstrip()) > 1:
            # Japanese line breaking: a closing bracket or comma never starts a line, so the
            # character before it moves down with it.
            carried, line = line.rstrip()[-1], line.rstrip()[:-1]
        if line.strip():
            lines.append(line.rstrip())
        line = carried + piece
        while cells(line) > width:  # one word longer than the line: cut it
            cut, used = 0, 0
            for index, char in enumerate(line):
                used += cells(char)
                if used > width:
                    break
                cut = index + 1
            lines.append(line[:cut])
            line = line[cut:]
    if line.strip():
        lines.append(line.rstrip())
    return lines


def _pieces(text: str) -> list[str]:
    """Words, single spaces and single wide characters (each a possible line start)."""
    pieces: list[str] = []
    word = ""
    for char in text:
        if char == " " or _wide(char):
            if word:
                pieces.append(word)
                word = ""
            pieces.append(char)
        else:
            word += char
    if word:
        pieces.append(word)
    return pieces


class CellWidthHelpFormatter(argparse.HelpFormatter):
    def _format_usage(self, usage, actions, groups, prefix):  # type: ignore[no-untyped-def]
        # argparse measures the "usage: " prefix in characters; in cells it may be wider.
        if prefix is None:
            prefix = argparse._("usage: ")  # type: ignore[attr-defined]
        extra = cells(prefix) - len(prefix)
        self._width -= extra
        try:
            return super()._format_usage(usage, actions, groups, prefix)
        finally:
            self._width += extra

    def _split_lines(self, text: str, width: int) -> list[str]:
        return wrap_cells(text, width)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n".join(indent + line for line in wrap_cells(text, width - len(indent)))


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser with help wrapped by terminal cells."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", CellWidthHelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
