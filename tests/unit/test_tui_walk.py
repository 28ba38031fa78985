"""Every screen of every recorded machine, in English and in Japanese, at 80x24.

The real `engine-installer --dry-run` runs in a pseudo-terminal and is driven through the
whole install or upgrade (the keyboard chosen by searching "japan" / 「日本」, the summary
scrolled to its last step, the log viewed on Finished). Every screen on the way is checked as
a technician would see it: the frame is whole (nothing wider than 80 cells pushed it), the
header and the key hints are not cut, and in Japanese no English message of the catalog is
left on screen.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from wcwidth import wcswidth

from engine_installer.base import i18n
from tests.tui_term import MACHINES, Term

LANGS = ("en", "ja")
ALL_MACHINES = sorted(p.stem for p in MACHINES.glob("*.json"))
BOX = re.compile("[│┌┐└┘─█▲▼]")


def words(lang: str) -> dict[str, str]:
    """The screens' titles and a few labels in lang (from the same catalog the UI uses)."""
    i18n.set_language(lang)
    try:
        tr = i18n._
        return {
            "choice": tr("1/5 Install choice"),
            "welcome": tr("2/5 Welcome"),
            "eula": tr("3/5 Licence agreement"),
            "keyboard": tr("4/5 Keyboard layout"),
            "existing": tr("5/5 Existing installation"),
            "several": tr("5/5 Existing installations"),
            "target": tr("5/5 Target disk"),
            "summary": tr("Summary — confirm"),
            "installing": tr("Installing"),
            "finished": tr("Finished"),
            "error": tr("Error"),
            "log": tr("Log"),
            "install": tr("Install Engine"),
            "override": tr("Lab override: install anyway (logged)"),
            "downgrade": tr("I understand: downgrade anyway"),
            "looking": tr("Looking for existing Engine installations…"),
            "checking": tr("Checking this machine…"),
            "japanese": tr("Japanese (106/109 keys)"),
        }
    finally:
        i18n.set_language("en")


def english_messages() -> list[str]:
    """Catalog messages whose Japanese differs, long enough to be unmistakable on screen."""
    text = (Path(__file__).resolve().parents[2] / "po" / "ja.po").read_text(encoding="utf-8")
    found = []
    for msgid, msgstr in re.findall(r'^msgid "(.*)"\nmsgstr "(.*)"$', text, re.MULTILINE):
        plain = msgid and msgid != msgstr and "{" not in msgid and "%" not in msgid
        if plain and len(msgid) >= 10 and " " in msgid.strip():
            found.append(msgid.strip())
    return found


class Walk:
    def __init__(self, term: Term, lang: str):
        self.term = term
        self.lang = lang
        self.words = words(lang)
        self.english = english_messages() if lang == "ja" else []
        self.seen: dict[str, str] = {}

    def title(self) -> str:
        top = self.term.screen.display[1]
        return BOX.sub(" ", top).strip()

    def check(self, name: str) -> str:
        """The screen is whole at 80x24; remember it under name."""
        screen = self.term.screen
        text = self.term.text()
        for y in range(screen.lines):
            line = "".join(screen.buffer[y][x].data for x in range(screen.columns))
            assert wcswidth(line) <= 80, f"{name}: line {y} is {wcswidth(line)} cells:\n{text}"
        assert screen.buffer[1][1].data in "┌+" and screen.buffer[1][78].data in "┐+", text
        for y in range(2, 22):
            left, right = screen.buffer[y][1].data, screen.buffer[y][78].data
            assert left in "│|" and right in "│|", f"{name}: frame broken on line {y}:\n{text}"
        assert screen.display[0].rstrip().endswith("]"), f"{name}: header cut:\n{text}"
        footer = screen.display[23].strip()
        assert footer and not footer.endswith("…"), f"{name}: key hints cut:\n{text}"
        if self.lang == "ja" and name != "log":
            flat = " ".join(" ".join(BOX.sub(" ", line).split()) for line in text.splitlines())
            left = [m for m in self.english if m in flat]
            assert not left, f"{name}: untranslated {left}:\n{text}"
            assert re.search("[\u3040-\u30ff\u4e00-\u9fff]", flat), text
        self.seen[name] = text
        return text

    def wait_gone(self, word: str, screen: str, timeout: float = 40) -> str:
        """Wait until words[word] has left the screen; check it as screen."""
        deadline = time.monotonic() + timeout
        while self.words[word] in self.term.text():
            assert time.monotonic() < deadline, f"{word!r} still on screen after {timeout}s"
            time.sleep(0.1)
            self.term.pump()
        return self.check(screen)

    def wait(self, name: str, timeout: float = 40) -> str:
        self.term.wait_for(self.words[name], timeout=timeout)
        time.sleep(0.15)
        self.term.pump()
        return self.check(name)


def walk(term: Term, lang: str) -> Walk:
    """Drive one recorded machine from screen 1 to Finished and the log."""
    w = Walk(term, lang)
    screen = w.wait("choice")
    assert w.words["install"] in screen
    term.press("enter")
    w.wait("welcome")
    screen = w.wait_gone("checking", "welcome")  # the hardware check runs in the background
    if w.words["override"] in screen or "FAIL" in screen or "不合格" in screen:
        term.wait_for(w.words["override"])
        term.press("up", "space", "down")
    term.press("enter")
    w.wait("eula")
    term.press("pgdn")
    w.check("eula")
    term.press("tab", "enter")
    w.wait("keyboard")
    term.type("japan" if lang == "en" else "日本")
    term.wait_focused(w.words["japanese"], timeout=30)
    w.check("keyboard")
    term.press("enter")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        term.pump()
        title = w.title()
        if w.words["several"] in title:
            w.check("several")
            term.press("enter")
        elif w.words["existing"] in title and w.words["looking"] not in term.text():
            screen = w.check("existing")
            if w.words["downgrade"] in screen:
                term.press("up", "space", "down")
            term.press("enter")
            break
        elif w.words["target"] in title:
            w.check("target")
            term.press("enter")
            break
        time.sleep(0.1)
    w.wait("summary")
    term.press("pgdn", "pgdn")
    w.check("summary-end")
    term.press("tab", "enter")
    w.wait("installing")
    w.wait("finished", timeout=90)
    term.press("tab", "tab", "enter")  # View log
    w.wait("log")
    term.press("esc")
    w.wait("finished")
    return w


@pytest.fixture
def start(tmp_path: Path):
    terms: list[Term] = []

    def run(machine: str, lang: str, **env: str) -> Term:
        environ = {
            "ENGINE_INSTALLER_LANG": lang,
            "ENGINE_INSTALLER_SIM_SECONDS": "0.8",
            "ENGINE_INSTALLER_SIM_DETECT_SECONDS": "0.2",
            **env,
        }
        term = Term(machine, tmp_path / f"{machine}-{lang}.log", env=environ)
        terms.append(term)
        return term

    yield run
    for term in terms:
        term.close()


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("machine", ALL_MACHINES)
def test_every_screen_fits_and_is_translated(start, machine: str, lang: str) -> None:
    term = start(machine, lang)
    w = walk(term, lang)
    assert {"choice", "welcome", "eula", "keyboard", "summary", "installing", "finished"} <= set(
        w.seen
    )
    summary = w.seen["summary-end"]
    last = re.findall(r"(\d+)/(\d+)" if lang == "ja" else r"Step (\d+) of (\d+)", summary)
    assert last and last[-1][0] == last[-1][1], summary  # scrolled to the last step
    if machine == "engine-6.0":  # a downgrade is called one everywhere after choosing it
        for name in ("summary", "installing", "finished"):
            flat = w.seen[name].lower()
            if lang == "en":
                assert "downgrad" in flat and "upgrading" not in flat
                assert "upgrade engine" not in flat and "upgraded" not in flat
            else:
                assert "ダウングレード" in w.seen[name]


@pytest.mark.parametrize("lang", LANGS)
def test_error_screen_in_both_languages(start, lang: str) -> None:
    term = start("empty-disk", lang, ENGINE_INSTALLER_SIM_FAIL="write-slot")
    w = Walk(term, lang)
    w.wait("choice")
    term.press("enter")
    w.wait("welcome")
    term.press("enter")
    w.wait("eula")
    term.press("tab", "enter")
    w.wait("keyboard")
    term.press("enter")
    w.wait("target")
    term.press("enter")
    w.wait("summary")
    term.press("tab", "enter")
    screen = w.wait("error", timeout=90)
    expected = "real run would save it" if lang == "en" else "実際の実行では"
    term.wait_for(expected)
    assert ("I/O error" if lang == "en" else "I/O エラー") in term.text()
    term.press("tab", "enter")  # View log
    w.wait("log")
    term.press("enter")
    screen = w.wait("error")
    assert screen
