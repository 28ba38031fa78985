"""Drive the real `engine-installer --dry-run` in a pseudo-terminal and read its screen.

pexpect runs the process at 80x24; pyte emulates the terminal, so tests (and the screen
captures in docs/tui.md) see exactly what a technician sees. Run as a script to regenerate
the captures: python -m tests.tui_term docs/tui.md
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import pexpect
import pyte

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][0-9A-Za-z]|[\x0e\x0f]")
ROOT = Path(__file__).resolve().parents[1]
MACHINES = ROOT / "recorded-machines"
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


class Term:
    def __init__(
        self,
        machine: str,
        log: Path,
        *extra: str,
        cols: int = 80,
        rows: int = 24,
        env: dict[str, str] | None = None,
    ):
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.log = log
        # Only what the caller passes: no ENGINE_INSTALLER_* from the developer's shell.
        environ = {k: v for k, v in os.environ.items() if not k.startswith("ENGINE_INSTALLER")}
        environ.update(TERM="xterm", ENGINE_INSTALLER_LOG=str(log))
        environ.setdefault("ENGINE_INSTALLER_SIM_SECONDS", "1.5")
        environ.update(env or {})
        self.child = pexpect.spawn(
            sys.executable,
            [
                "-m",
                "engine_installer",
                "--dry-run",
                "--profile",
                str(MACHINES / f"{machine}.json"),
                *extra,
            ],
            cwd=str(ROOT),
            env=environ,
            dimensions=(rows, cols),
        )
        self.output = b""

    def pump(self, quiet: float = 0.05) -> None:
        """Read everything the process has written until it is quiet for `quiet` seconds."""
        while True:
            try:
                data = self.child.read_nonblocking(65536, timeout=quiet)
            except pexpect.TIMEOUT:
                return
            except pexpect.EOF:
                return
            self.output += data
            self.stream.feed(data)

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def focused(self) -> str:
        """The text drawn in the focus colour (the focused button or list item)."""
        parts = []
        for y in range(self.screen.lines):
            row = self.screen.buffer[y]
            run = "".join(
                row[x].data
                for x in range(self.screen.columns)
                if row[x].bg in ("cyan", "brightcyan")
            )
            if run.strip():
                parts.append(run.strip())
        return " | ".join(parts)

    def wait_for(self, needle: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump()
            if needle in self.text():
                return self.text()
            if not self.child.isalive():
                self.pump()
                break
        raise AssertionError(f"{needle!r} not on screen after {timeout}s:\n{self.text()}")

    def press(self, *keys: str, settle: float = 0.05) -> None:
        for key in keys:
            self.child.send(KEYS.get(key, key))
            self.pump(settle)

    def type(self, text: str) -> None:
        self.child.send(text)
        self.pump()

    def finish(self, timeout: float = 10.0) -> tuple[int, str]:
        """Wait for the process to exit; return its exit status and its last output line."""
        self.child.expect(pexpect.EOF, timeout=timeout)
        self.output += self.child.before or b""
        self.child.close()
        # What follows the last escape sequence is what was printed after the UI closed.
        after_ui = ANSI.split(self.output.decode(errors="replace"))[-1]
        tail = after_ui.replace("\r", "").strip().splitlines()
        return self.child.exitstatus, tail[-1] if tail else ""

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)
