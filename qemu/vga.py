"""The laptop's VGA screen read back as pixels: whether tty1's installer is on the screen, and
whether it draws Japanese.

The live system runs tty1's installer inside fbterm with VL Gothic at 16 px: cells of 8x16
pixels, a Japanese character two cells wide. A console without the CJK font draws the same
empty box for each character, or nothing; so distinct, inked shapes at the cells of known
Japanese words mean the glyphs were rendered.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

CELL_W, CELL_H = 8, 16
# Screen 1's rows are the same on any terminal width: row 8 "  再起動", row 9 "  電源を切る",
# the labels starting in column 5 (frame, padding, focus mark).
SCREEN1_GLYPHS = [(8, 5), (8, 7), (8, 9), (9, 5), (9, 7), (9, 9), (9, 11), (9, 13)]


def read_ppm(path: Path) -> tuple[int, int, bytes]:
    data = path.read_bytes()
    magic, size, _maxval, pixels = data.split(b"\n", 3)
    if magic != b"P6":
        raise ValueError(f"{path}: not a binary PPM ({magic!r})")
    width, height = map(int, size.split())
    return width, height, pixels


def glyph(width: int, pixels: bytes, row: int, col: int) -> tuple[tuple[bool, ...], ...]:
    """The lit pixels of the two-cell character at (row, col)."""

    def lit(x: int, y: int) -> bool:
        i = (y * width + x) * 3
        return max(pixels[i : i + 3]) > 96

    return tuple(
        tuple(lit(x, y) for x in range(col * CELL_W, (col + 2) * CELL_W))
        for y in range(row * CELL_H, (row + 1) * CELL_H)
    )


def screendump(vm, workdir: Path) -> tuple[int, int, bytes]:
    return read_ppm(vm.screendump(workdir / "vga.ppm"))


def japanese_on_screen1(vm, workdir: Path) -> tuple[bool, str]:
    """Whether the VGA screen shows screen 1's 「再起動」 and 「電源を切る」 as eight distinct,
    inked glyphs; with a detail for the failure message."""
    width, height, pixels = screendump(vm, workdir)
    if width < 20 * CELL_W or height < 10 * CELL_H:
        return False, f"screen {width}x{height}"
    shapes = [glyph(width, pixels, row, col) for row, col in SCREEN1_GLYPHS]
    inked = [sum(map(sum, shape)) for shape in shapes]
    distinct = len(set(shapes))
    return all(n >= 20 for n in inked) and distinct == len(shapes), f"{inked}, {distinct}"


def wait_shown(
    check: Callable[[], tuple[bool, str]], timeout: float, every: float = 3.0
) -> tuple[bool, str]:
    """check() every `every` s until it says shown or timeout has passed; its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        shown, detail = check()
        if shown or time.monotonic() > deadline:
            return shown, detail
        time.sleep(every)


def wait_japanese_on_screen1(vm, workdir: Path, timeout: float) -> tuple[bool, str]:
    return wait_shown(lambda: japanese_on_screen1(vm, workdir), timeout)


# Lit: any colour channel above this (text, and the title and focus bars' backgrounds).
_LIT = bytes(48 + (value > 96) for value in range(256))
# The installer's title bar spans the terminal; kernel and systemd text never lights a pixel
# row for this many cells without a gap.
BAR_CELLS = 60


def longest_lit_run(width: int, pixels: bytes) -> int:
    """The longest run of lit pixels in any pixel row of the screen."""
    longest = 0
    for y in range(len(pixels) // (width * 3)):
        row = pixels[y * width * 3 : (y + 1) * width * 3].translate(_LIT)
        lit = int(row[0::3], 2) | int(row[1::3], 2) | int(row[2::3], 2)
        runs = format(lit, "b").split("0")
        longest = max(longest, *(len(run) for run in runs))
    return longest


def installer_on_screen(vm, workdir: Path) -> tuple[bool, str]:
    """Whether tty1's installer is on the laptop's screen: a bar of BAR_CELLS cells or more
    (its title bar); with a detail for the failure message."""
    width, _height, pixels = screendump(vm, workdir)
    run = longest_lit_run(width, pixels)
    if run >= BAR_CELLS * CELL_W:
        return True, f"a bar of {run} px"
    return False, f"longest lit run {run} px, less than {BAR_CELLS} cells"


def wait_installer_on_screen(
    vm, workdir: Path, timeout: float, every: float = 3.0
) -> tuple[bool, str]:
    return wait_shown(lambda: installer_on_screen(vm, workdir), timeout, every)
