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

from qemu.console import KEYS  # the bytes a VT100-style terminal sends

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][0-9A-Za-z]|[\x0e\x0f]")
ROOT = Path(__file__).resolve().parents[1]
MACHINES = ROOT / "recorded-machines"


class Term:
    def __init__(
        self,
        machine: str,  # a recorded machine's name; ignored for live runs
        log: Path,
        *extra: str,
        cols: int = 80,
        rows: int = 24,
        env: dict[str, str] | None = None,
        live: bool = False,
    ):
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.log = log
        # Only what the caller passes: no ENGINE_INSTALLER_* from the developer's shell.
        environ = {k: v for k, v in os.environ.items() if not k.startswith("ENGINE_INSTALLER")}
        environ["TERM"] = "xterm"
        if not live:  # a live run logs where the disk backend logs (ENGINE_INSTALLER_LOG_DIR)
            environ["ENGINE_INSTALLER_LOG"] = str(log)
        environ.setdefault("ENGINE_INSTALLER_SIM_SECONDS", "1.5")
        environ.update(env or {})
        self.child = pexpect.spawn(
            sys.executable,
            ["-m", "engine_installer", *extra]
            if live
            else [
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

    def wait_focused(self, label: str, timeout: float = 10.0) -> None:
        """Wait until the focus colour is on `label` (exactly, or the row containing it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump()
            focused = self.focused()
            if focused == label or (not label.startswith(">") and label in focused):
                return
        raise AssertionError(f"focus is on {self.focused()!r}, not {label!r}:\n{self.text()}")

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


# ---- screen captures for docs/tui.md -----------------------------------------------------------

CAPTURES: list[tuple[str, str, list[tuple[str, ...]], str, dict[str, str], tuple[str, ...]]] = [
    # (title, machine, steps, screen text to wait for before capturing, env, extra args)
    # steps: ("key", name) | ("type", text) | ("wait", text) | ("sleep", seconds)
    ("1. Install choice", "empty-disk", [], "1/5 Install choice", {}, ()),
    ("2. Welcome", "engine-4.5", [("key", "enter")], "2/5 Welcome", {}, ()),
    (
        "2b. Welcome: a failed hardware check blocks Continue",
        "vtx-disabled",
        [("key", "enter"), ("wait", "Lab override"), ("key", "enter")],
        "Cannot install",
        {},
        (),
    ),
    (
        "3. Licence agreement (Back is focused)",
        "engine-4.5",
        [("key", "enter"), ("wait", "Welcome"), ("key", "enter")],
        "Accept",
        {},
        (),
    ),
]


def _through_eula(keys: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    return [
        ("key", "enter"),
        ("wait", "2/5 Welcome"),
        ("key", "enter"),
        ("wait", "Accept"),
        ("key", "tab"),
        ("key", "enter"),
        ("wait", "4/5 Keyboard"),
    ] + keys


def _to_found(keys: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    return _through_eula([("key", "enter"), ("wait", " found")] + keys)


CAPTURES += [
    (
        '4. Keyboard layout, searching for "de"',
        "engine-4.5",
        _through_eula([("type", "de"), ("wait", "Search: de")]),
        "Search: de",
        {},
        (),
    ),
    (
        "5a. Existing installation: detection in the background",
        "engine-4.5",
        _through_eula([("key", "enter")]),
        "Looking for existing",
        {},
        (),
    ),
    (
        "5b. Existing installation: Engine 4.5 found (upgrade or reinstall)",
        "engine-4.5",
        _to_found([]),
        "An Engine installation was found",
        {},
        (),
    ),
    (
        "5c. Existing installation: several installs, choose one",
        "two-engines",
        _to_found([]),
        "Choose the one",
        {},
        (),
    ),
    (
        "5d. Existing installation: newer Engine on disk, downgrade refused",
        "engine-6.0",
        _to_found([("key", "tab"), ("key", "enter")]),
        "Downgrade refused",
        {},
        (),
    ),
    (
        "5e. No Engine found: target disk (boot medium and busy disks not offered)",
        "windows-only",
        _to_found([]),
        "5/5 Target disk",
        {},
        (),
    ),
    (
        "6. Summary and confirmation (Back is focused)",
        "engine-4.5",
        _to_found([("key", "enter")]),
        "Summary",
        {},
        (),
    ),
    (
        "7. Progress",
        "engine-4.5",
        _to_found(
            [
                ("key", "enter"),
                ("wait", "Summary"),
                ("key", "tab"),
                ("key", "enter"),
                ("wait", "Step 3"),
                ("sleep", "2"),
            ]
        ),
        "Writing",
        {"ENGINE_INSTALLER_SIM_SECONDS": "12"},
        (),
    ),
    (
        "8. Done (upgrade): VMs that need a manual PV-driver upgrade",
        "engine-4.5",
        _to_found([("key", "enter"), ("wait", "Summary"), ("key", "tab"), ("key", "enter")]),
        "Upgraded",
        {},
        (),
    ),
    (
        "9. Error (a simulated write fault)",
        "empty-disk",
        _to_found([("key", "enter"), ("wait", "Summary"), ("key", "tab"), ("key", "enter")]),
        "could not finish",
        {"ENGINE_INSTALLER_SIM_FAIL": "write-slot"},
        (),
    ),
    (
        "ASCII mode (--ascii, or TERM=vt100) on a serial console",
        "engine-6.0",
        _to_found([]),
        "would stop running",
        {},
        ("--ascii",),
    ),
]


def capture_all() -> list[tuple[str, str]]:
    """Run every capture scenario; return (title, 80x24 screen text)."""
    import tempfile

    shots = []
    with tempfile.TemporaryDirectory() as tmp:
        for title, machine, steps, until, env, extra in CAPTURES:
            term = Term(machine, Path(tmp) / "installer.log", *extra, env=env)
            try:
                term.wait_for("1/5 Install choice", timeout=15)
                for kind, value in steps:
                    if kind == "key":
                        term.press(value)
                    elif kind == "type":
                        term.type(value)
                    elif kind == "wait":
                        term.wait_for(value, timeout=15)
                    else:
                        time.sleep(float(value))
                        term.pump()
                shots.append((title, term.wait_for(until, timeout=15)))
            finally:
                term.close()
    return shots


def write_docs(path: Path) -> None:
    text = path.read_text()
    marker = "<!-- captures: generated by `python -m tests.tui_term docs/tui.md` -->"
    head = text.split(marker)[0] if marker in text else text
    parts = [head.rstrip() + "\n\n" + marker + "\n"]
    for title, screen in capture_all():
        parts.append(f"\n### {title}\n\n```text\n{screen}\n```\n")
    path.write_text("".join(parts))


if __name__ == "__main__":
    write_docs(Path(sys.argv[1]))
