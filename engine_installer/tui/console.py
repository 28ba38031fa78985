"""Can this console show Japanese? The answer decides whether Japanese is offered or used.

- The Linux console's own VGA text font has no Japanese glyphs; the live system runs the
  installer on tty1 inside a frame-buffer terminal with a CJK font (fbterm, which sets
  ENGINE_INSTALLER_CONSOLE=fbterm for us). A plain TERM=linux console cannot.
- A serial console is asked: the installer writes one wide character and asks for the cursor
  position (ESC [6n, answered by every VT100-style terminal). Only a terminal that answers
  with the cursor two cells on shows UTF-8 wide characters; no answer or another position
  means the terminal cannot, and the installer stays in English (ASCII drawing).
- Any other terminal (a terminal emulator on a desktop: the dry run) is taken to be UTF-8.
"""

from __future__ import annotations

import os
import re
import select
import termios
import time
import tty

CONSOLE_ENV = "ENGINE_INSTALLER_CONSOLE"  # "fbterm": set by the live system's tty1 wrapper
SERIAL_TERMS = ("vt100", "vt102", "vt220", "linux-serial", "dumb")
PROBE_CHAR = "日"
NOT_ASKED = "the serial terminal was not asked whether it shows UTF-8"
_POSITION = re.compile(rb"\x1b\[(\d+);(\d+)R")


def is_serial(term: str, ascii_flag: bool) -> bool:
    return ascii_flag or term in SERIAL_TERMS


def frame_buffer_terminal() -> bool:
    return os.environ.get(CONSOLE_ENV, "") == "fbterm"


def plain_linux_console(term: str) -> bool:
    """The kernel's VGA text console: CP437 glyphs only (no fbterm around the installer)."""
    return term == "linux" and not frame_buffer_terminal()


def probe_wide_chars(fd: int, timeout: float = 2.0) -> bool | None:
    """Ask the terminal on fd where a wide character left the cursor: True when it advanced
    two cells, False when it did not, None when the terminal did not answer."""
    if not os.isatty(fd):
        return None
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        termios.tcflush(fd, termios.TCIFLUSH)
        os.write(fd, ("\r" + PROBE_CHAR + "\x1b[6n").encode())
        answer = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _w, _x = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            answer += os.read(fd, 64)
            match = _POSITION.search(answer)
            if match:
                return int(match.group(2)) == 3  # column 1 + two cells
        return None
    finally:
        os.write(fd, b"\r\x1b[K")
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def japanese_shown(term: str, ascii_flag: bool, fd: int | None = None) -> tuple[bool, str]:
    """(can Japanese be shown here, why not: one sentence for the log)."""
    if plain_linux_console(term):
        return False, "the Linux text console has no Japanese font (no frame-buffer terminal)"
    if is_serial(term, ascii_flag):
        if fd is None:
            return False, NOT_ASKED
        answer = probe_wide_chars(fd)
        if answer is None:
            return False, "the serial terminal did not answer the cursor-position query"
        if not answer:
            return False, "the serial terminal does not show UTF-8 wide characters"
    return True, ""
