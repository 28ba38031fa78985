"""The installer ISO in Japanese: the boot menu's 日本語 entry, on the serial console and on the
laptop's screen (VGA), under TCG.

The entry is chosen in GRUB's menu as a technician does (two Down keys, Enter). The serial
console then shows screen 1 in Japanese (the harness answers the installer's cursor-position
query as a real terminal does). The laptop's screen runs the installer inside fbterm; its
screendump must show Japanese glyphs: the characters of 「再起動」 and 「電源を切る」 on
screen 1 are eight different, non-empty shapes (a console without the CJK font would draw
the same empty box for each, or nothing).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from qemu.console import SerialConsole
from qemu.harness import laptop

pytestmark = [pytest.mark.qemu, pytest.mark.root]

BOOT_TIMEOUT = 900
# fbterm with VL Gothic at 16 px: cells of 8x16 pixels, a Japanese character two cells wide.
CELL_W, CELL_H = 8, 16
# Screen 1's rows are the same on any terminal width: row 8 "  再起動", row 9 "  電源を切る",
# the labels starting in column 5 (frame, padding, focus mark).
GLYPHS = [(8, 5), (8, 7), (8, 9), (9, 5), (9, 7), (9, 9), (9, 11), (9, 13)]


def read_ppm(path: Path) -> tuple[int, int, bytes]:
    data = path.read_bytes()
    magic, size, _maxval, pixels = data.split(b"\n", 3)
    assert magic == b"P6", magic
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


def japanese_on_vga(vm, workdir: Path) -> tuple[bool, str]:
    ppm = workdir / "vga.ppm"
    ppm.unlink(missing_ok=True)
    vm.monitor(f"screendump {ppm}")
    for _ in range(50):
        if ppm.exists() and ppm.stat().st_size > 0:
            break
        time.sleep(0.1)
    width, height, pixels = read_ppm(ppm)
    if width < 20 * CELL_W or height < 10 * CELL_H:
        return False, f"screen {width}x{height}"
    shapes = [glyph(width, pixels, row, col) for row, col in GLYPHS]
    inked = [sum(map(sum, shape)) for shape in shapes]
    distinct = len(set(shapes))
    return all(n >= 20 for n in inked) and distinct == len(shapes), f"{inked}, {distinct}"


@pytest.mark.cell("ISO Japanese entry: serial and VGA (fbterm), SeaBIOS, DVD")
def test_japanese_entry_on_serial_and_vga(installer_iso, tmp_path):
    disk = tmp_path / "laptop.img"
    with open(disk, "wb") as handle:
        handle.truncate(8 * 1024**3)
    with laptop(disk, media=installer_iso, media_kind="dvd", workdir=tmp_path) as vm:
        console = SerialConsole(vm)
        console.wait_for("日本語: Engine|\\?\\?\\?: Engine", timeout=BOOT_TIMEOUT, regex=True)
        console.press("down", "down", settle=1.0)
        console.press("enter")
        screen = console.wait_for("Engine をインストールする", timeout=BOOT_TIMEOUT)
        assert "1/5 インストールの選択" in screen and "(*) 日本語" in screen
        console.press("enter")
        screen = console.wait_for("2/5 ようこそ", timeout=120)
        assert "インストーラーへようこそ" in screen
        deadline = time.monotonic() + 180  # tty1's installer starts inside fbterm
        shown, detail = False, ""
        while time.monotonic() < deadline and not shown:
            shown, detail = japanese_on_vga(vm, tmp_path)
            if not shown:
                time.sleep(3)
        vm.screenshot(tmp_path / "vga-japanese.png")
        assert shown, f"no Japanese glyphs on the VGA console ({detail}): see vga-japanese.png"
