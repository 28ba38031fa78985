"""Read the installer's screen over a VM's serial line (pyte, 80x24) and type keys into it.

The harness connects to the serial chardev's unix socket as soon as QEMU starts and keeps
every byte QEMU sends (VM.console_bytes()); the screen is rebuilt from those, so nothing drawn
before the driver was created is missed. Keys go in through the same socket (the guest's ttyS0
input). Tests assert on
SerialConsole.text() — what a technician at a serial terminal sees.

    console = SerialConsole(vm)
    console.wait_for("1/5 Install choice", timeout=600)
    console.press("enter")
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pyte

from qemu.harness import VM, HarnessError

# The same key bytes a VT100-style serial terminal sends.
KEYS = {
    "enter": "\r",
    "tab": "\t",
    "up": "\x1b[A",
    "down": "\x1b[B",
    "right": "\x1b[C",
    "left": "\x1b[D",
    "esc": "\x1b",
    "pgdn": "\x1b[6~",
    "pgup": "\x1b[5~",
    "space": " ",
    "backspace": "\x7f",
}

# GRUB's countdown line under its menu (GRUB's own English, whatever the entries' language).
GRUB_COUNTDOWN = "executed automatically in"
GRUB_BOOTING = "Booting `"  # GRUB has started an entry


class _Screen(pyte.Screen):
    """pyte's screen, tolerant of extra CSI parameters (urwid on a serial TERM sends some),
    answering a cursor-position query (ESC [6n) as a real terminal does: the installer asks
    before it shows Japanese on a serial line (tui/console.py)."""

    reply = None  # set by SerialConsole: sends bytes to the guest

    def cursor_position(self, line=None, column=None, *_extra) -> None:
        super().cursor_position(line, column)

    def write_process_input(self, data: str) -> None:
        if self.reply is not None:
            self.reply(data.encode())


class SerialConsole:
    def __init__(self, vm: VM, cols: int = 80, rows: int = 24, start: int = 0) -> None:
        self.vm = vm
        self.screen = _Screen(cols, rows)
        self.screen.reply = vm.send_serial
        self.stream = pyte.ByteStream(self.screen)
        self.offset = start  # bytes of the serial log already fed to the emulator

    def pump(self) -> None:
        """Feed whatever the guest wrote since the last call into the emulator."""
        data = self.vm.console_bytes()
        if len(data) > self.offset:
            self.stream.feed(data[self.offset :])
            self.offset = len(data)

    def text(self) -> str:
        self.pump()
        return "\n".join(line.rstrip() for line in self.screen.display)

    def focused(self) -> str:
        """Text drawn in reverse video or a highlight colour (urwid's focus)."""
        self.pump()
        parts = []
        for y in range(self.screen.lines):
            row = self.screen.buffer[y]
            run = "".join(
                row[x].data
                for x in range(self.screen.columns)
                if row[x].reverse or row[x].bg not in ("default", "black")
            )
            if run.strip():
                parts.append(run.strip())
        return " | ".join(parts)

    def wait_for(
        self,
        needle: str,
        timeout: float = 60.0,
        regex: bool = False,
        check: Callable[[str], str] | None = None,
    ) -> str:
        """Wait until needle (text, or a regex) is on the screen; return the screen. `check`
        turns the screen into the text searched (e.g. joining wrapped lines)."""
        pattern = re.compile(needle if regex else re.escape(needle))
        deadline = time.monotonic() + timeout
        while True:
            screen = self.text()
            if pattern.search(check(screen) if check else screen):
                # The needle is drawn; let the rest of the redraw arrive (a slow serial line).
                return self.wait_quiet(0.7)
            if not self.vm.running:
                raise HarnessError(f"QEMU stopped before {needle!r} appeared; screen:\n{screen}")
            if time.monotonic() > deadline:
                raise HarnessError(f"{needle!r} not on screen after {timeout:.0f} s:\n{screen}")
            time.sleep(0.3)

    def wait_focused(self, label: str, timeout: float = 30.0) -> str:
        """Wait until `label` is in the focused text (under emulation on a busy machine the
        guest can take seconds to act on a key); return the focused text."""
        deadline = time.monotonic() + timeout
        while True:
            focused = self.focused()
            if label in focused:
                return focused
            if not self.vm.running or time.monotonic() > deadline:
                raise HarnessError(
                    f"{label!r} is not focused after {timeout:.0f} s (focused: {focused!r}):\n"
                    f"{self.text()}"
                )
            time.sleep(0.2)

    def wait_quiet(self, seconds: float = 1.0, timeout: float = 30.0) -> str:
        """Wait until the guest has written nothing for `seconds` (a redraw has finished)."""
        deadline = time.monotonic() + timeout
        last, since = len(self.vm.console_bytes()), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.2)
            size = len(self.vm.console_bytes())
            if size != last:
                last, since = size, time.monotonic()
            elif time.monotonic() - since >= seconds:
                break
        return self.text()

    def press(self, *keys: str, settle: float = 0.5) -> None:
        """Type named keys (see KEYS) or literal text, one at a time, as a person would."""
        for key in keys:
            self.vm.send_serial(KEYS.get(key, key).encode())
            # urwid tells a lone Esc from an escape sequence by a short pause; TCG is slow.
            time.sleep(settle)

    def boot_highlighted_entry(self, timeout: float) -> None:
        """At the boot menu, Enter: the highlighted entry boots without the countdown, as
        when a technician at the laptop presses it. When the countdown has already run out
        (a busy machine, or several guests watched in turn), no key is sent: it would reach
        the booting system instead. bench/boot.py waits the countdown out, as a laptop left
        alone does."""
        countdown = self.vm.wait_for(re.escape(GRUB_COUNTDOWN), timeout)
        if GRUB_BOOTING not in self.vm.serial_text()[countdown.end() :]:
            self.press("enter")

    def type(self, text: str, settle: float = 0.3) -> None:
        for char in text:
            self.vm.send_serial(char.encode())
            time.sleep(settle)
