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

    def wait_for(self, needle: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump()
            if needle in self.text():
                return self.text()
            if not self.child.isalive():
                self.pump()
                break
        raise AssertionError(f"{needle!r} not on screen after {timeout}s:\n{self.text()}")

    def wait_focused(self, label: str, timeout: float = 30.0) -> None:
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


# ---- screen captures for docs/tui.md and README.md ---------------------------------------------

# (title, machine, steps, screen text to wait for before capturing, env, extra args, in README)
# steps: ("key", name) | ("type", text) | ("wait", text) | ("sleep", seconds)
Capture = tuple[str, str, list[tuple[str, ...]], str, dict[str, str], tuple[str, ...], bool]
JA = {"ENGINE_INSTALLER_LANG": "ja"}


def _through_eula(
    keys: list[tuple[str, ...]], welcome: str = "2/5 Welcome"
) -> list[tuple[str, ...]]:
    return [
        ("key", "enter"),
        ("wait", welcome),
        ("key", "enter"),
        ("wait", "3/5 "),
        ("key", "tab"),
        ("key", "enter"),
        ("wait", "4/5 "),
    ] + keys


def _to_found(keys: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    return _through_eula([("key", "enter"), ("wait", "5/5 "), ("sleep", "2.5")] + keys)


def _to_summary(keys: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    return _to_found([("key", "enter"), ("wait", "Summary")] + keys)


CAPTURES: list[Capture] = [
    ("1. Install choice", "empty-disk", [], "1/5 Install choice", {}, (), True),
    (
        "1 (日本語). Install choice in Japanese: 「Engine をインストールする」",
        "empty-disk",
        [],
        "Engine をインストールする",
        JA,
        (),
        True,
    ),
    ("2. Welcome", "engine-4.5", [("key", "enter")], "Compatibility: PASS", {}, (), True),
    (
        "2b. Welcome: a failed hardware check, every line in full; Continue is blocked",
        "vtx-disabled",
        [("key", "enter"), ("wait", "Lab override"), ("key", "enter")],
        "Cannot install",
        {},
        (),
        True,
    ),
    (
        "2b (日本語). The same failed check in Japanese (the screen scrolls: PgUp/PgDn)",
        "vtx-disabled",
        [("key", "enter"), ("wait", "ラボ用の例外"), ("key", "enter")],
        "インストールできません",
        JA,
        (),
        False,
    ),
    (
        "3. Licence agreement (Back is focused)",
        "engine-4.5",
        [("key", "enter"), ("wait", "Welcome"), ("key", "enter")],
        "Accept",
        {},
        (),
        True,
    ),
    (
        '4. Keyboard layout, searching for "japan"',
        "engine-4.5",
        _through_eula([("type", "japan"), ("wait", "Search: japan")]),
        "Search: japan",
        {},
        (),
        True,
    ),
    (
        "4 (日本語). Keyboard layout, searching for 「日本」",
        "engine-4.5",
        _through_eula([("type", "日本"), ("wait", "検索: 日本")], welcome="2/5 ようこそ"),
        "検索: 日本",
        JA,
        (),
        False,
    ),
    (
        "5a. Existing installation: detection in the background",
        "engine-4.5",
        _through_eula([("key", "enter")]),
        "Looking for existing",
        {"ENGINE_INSTALLER_SIM_DETECT_SECONDS": "30"},
        (),
        True,
    ),
    (
        "5b. Existing installation: Engine 4.5 found, its VMs' PV drivers against the medium's",
        "engine-4.5",
        _to_found([]),
        "An Engine installation was found",
        {},
        (),
        True,
    ),
    (
        "5c. Existing installation: several installs, choose one",
        "two-engines",
        _to_found([]),
        "Choose the one",
        {},
        (),
        True,
    ),
    (
        "5d. Existing installation: newer Engine on disk, a downgrade only when confirmed",
        "engine-6.0",
        _to_found([("key", "right"), ("key", "enter")]),
        "Tick the confirmation",
        {},
        (),
        True,
    ),
    (
        "5e. No Engine found: target disk (the boot medium and a busy disk listed, not offered)",
        "windows-only",
        _to_found([]),
        "5/5 Target disk",
        {},
        (),
        True,
    ),
    (
        "6. Summary: the steps the installer will run (Back is focused; PgDn scrolls)",
        "engine-4.5",
        _to_summary([]),
        "Summary",
        {},
        (),
        True,
    ),
    (
        "6 (日本語). Summary of a fresh install in Japanese",
        "empty-disk",
        _through_eula(
            [("key", "enter"), ("wait", "5/5 "), ("sleep", "2.5"), ("key", "enter")],
            welcome="2/5 ようこそ",
        ),
        "内容の確認",
        JA,
        (),
        False,
    ),
    (
        "7. Progress: the step, its bytes and speed, all steps with the time left",
        "engine-4.5",
        _to_summary([("key", "tab"), ("key", "enter"), ("wait", "Step 1 of 8"), ("sleep", "6")]),
        " left",
        {"ENGINE_INSTALLER_SIM_SECONDS": "20"},
        (),
        True,
    ),
    (
        "8. Finished (upgrade): the upgrade report's VMs",
        "engine-4.5",
        _to_summary([("key", "tab"), ("key", "enter")]),
        "Upgraded",
        {},
        (),
        True,
    ),
    (
        "9. Error (a simulated write fault): where the log went, and the ways on",
        "empty-disk",
        _to_summary([("key", "tab"), ("key", "enter"), ("wait", "could not finish")]),
        "Dry run: the log",
        {"ENGINE_INSTALLER_SIM_FAIL": "write-slot"},
        (),
        True,
    ),
    (
        "ASCII mode (--ascii, or TERM=vt100) on a serial console",
        "engine-6.0",
        _to_found([]),
        "stops running",
        {},
        ("--ascii",),
        False,
    ),
]


def capture_all(only_readme: bool = False) -> list[tuple[str, str]]:
    """Run every capture scenario; return (title, 80x24 screen text)."""
    import tempfile

    log = Path(tempfile.gettempdir()) / "engine-installer-dry-run.log"  # the documented default
    shots = []
    for title, machine, steps, until, env, extra, readme in CAPTURES:
        if only_readme and not readme:
            continue
        term = Term(machine, log, *extra, env=env)
        try:
            term.wait_for("1/5 ", timeout=30)
            for kind, value in steps:
                if kind == "key":
                    term.press(value)
                elif kind == "type":
                    term.type(value)
                elif kind == "wait":
                    term.wait_for(value, timeout=30)
                else:
                    time.sleep(float(value))
                    term.pump()
            term.wait_for(until, timeout=30)
            time.sleep(0.3)
            term.pump()
            shots.append((title, term.text()))
        finally:
            term.close()
    return shots


MARK = "<!-- captures: generated by `python -m tests.tui_term` -->"
END = "<!-- end of captures -->"


def _replace(path: Path, shots: list[tuple[str, str]], heading: str) -> None:
    text = path.read_text()
    head, rest = text.split(MARK) if MARK in text else (text.rstrip() + "\n\n", "")
    tail = rest.split(END, 1)[1] if END in rest else "\n"
    body = "".join(f"\n{heading} {title}\n\n```text\n{screen}\n```\n" for title, screen in shots)
    path.write_text(head + MARK + "\n" + body + "\n" + END + tail)


def write_docs(root: Path = ROOT) -> None:
    shots = capture_all()
    readme = {t for t, *_r, in_readme in CAPTURES if in_readme}
    _replace(root / "docs" / "tui.md", shots, "###")
    _replace(root / "README.md", [s for s in shots if s[0] in readme], "####")


if __name__ == "__main__":
    write_docs()
