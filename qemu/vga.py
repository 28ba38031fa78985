"""The laptop's VGA screen read back as pixels: whether the installer on tty1 draws Japanese.

The live system runs tty1's installer inside fbterm with VL Gothic at 16 px: cells of 8x16
pixels, a Japanese character two cells wide. A console without the CJK font draws the same
empty box for each character, or nothing; so distinct, inked shapes at the cells of known
Japanese words mean the glyphs were rendered.
"""

from __future__ import annotations

import time
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


def japanese_on_screen1(vm, workdir: Path) -> tuple[bool, str]:
    """Whether the VGA screen shows screen 1's 「再起動」 and 「電源を切る」 as eight distinct,
    inked glyphs; with a detail for the failure message."""
    ppm = workdir / "vga.ppm"
    ppm.unlink(missing_ok=True)
    vm.monitor(f"screendump {ppm}")
    for _ in range(50):  # QEMU writes the file asynchronously on some displays
        if ppm.exists() and ppm.stat().st_size > 0:
            break
        time.sleep(0.1)
    width, height, pixels = read_ppm(ppm)
    if width < 20 * CELL_W or height < 10 * CELL_H:
        return False, f"screen {width}x{height}"
    shapes = [glyph(width, pixels, row, col) for row, col in SCREEN1_GLYPHS]
    inked = [sum(map(sum, shape)) for shape in shapes]
    distinct = len(set(shapes))
    return all(n >= 20 for n in inked) and distinct == len(shapes), f"{inked}, {distinct}"


def wait_japanese_on_screen1(vm, workdir: Path, timeout: float) -> tuple[bool, str]:
    deadline = time.monotonic() + timeout
    shown, detail = False, "no screendump"
    while time.monotonic() < deadline and not shown:
        shown, detail = japanese_on_screen1(vm, workdir)
        if not shown:
            time.sleep(3)
    return shown, detail
