"""Translations: the catalogs are complete and build, the language is chosen as documented,
and --help of the three commands comes out in Japanese within the terminal's width."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine_installer.base import i18n
from engine_installer.base.cli_help import cells, wrap_cells

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def english_afterwards():
    saved = {k: os.environ.get(k) for k in (i18n.ENV, "LANGUAGE")}
    yield
    i18n.set_language("en")
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_every_message_in_the_code_has_a_japanese_translation(tmp_path: Path) -> None:
    """The messages are extracted from the code afresh (as `make po` does): a string marked
    for translation without a Japanese msgstr (or with a fuzzy one) fails here."""
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "engine_installer").rglob("*.py"))
    pot = tmp_path / "fresh.pot"
    subprocess.run(
        ["xgettext", "--language=Python", "--from-code=UTF-8", "--keyword=_", "--keyword=N_",
         "--keyword=ngettext:1,2", "--no-wrap", "-o", str(pot), *files],
        cwd=ROOT, check=True,
    )  # fmt: skip
    messages = subprocess.run(
        ["msgcmp", str(ROOT / "po" / "ja.po"), str(pot)], capture_output=True, text=True
    )
    assert messages.returncode == 0, messages.stderr  # lists every message lacking Japanese
    check = subprocess.run(
        ["msgfmt", "--check", "--statistics", "-o", "/dev/null", str(ROOT / "po" / "ja.po")],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    assert "untranslated" not in check.stderr and "fuzzy" not in check.stderr, check.stderr


def test_the_guide_term_for_screen_one() -> None:
    i18n.set_language("ja")
    assert i18n._("Install Engine") == "Engine をインストールする"


@pytest.mark.parametrize(
    ("environ", "cmdline", "expected"),
    [
        ({}, "", "en"),
        ({"LANG": "ja_JP.UTF-8"}, "", "ja"),
        ({"LANG": "C.UTF-8"}, "", "en"),
        ({"LANG": "ja_JP.UTF-8", "LC_ALL": "C"}, "", "en"),
        ({"LANGUAGE": "fr:ja", "LANG": "C"}, "", "ja"),
        ({"LANG": "C.UTF-8"}, "boot=live engine.lang=ja quiet", "ja"),
        ({"LANG": "ja_JP.UTF-8"}, "engine.lang=en", "en"),
        # The text UI's own choice, passed on to the install worker, wins over the boot menu.
        ({i18n.ENV: "en"}, "engine.lang=ja", "en"),
        ({i18n.ENV: "ja"}, "", "ja"),
    ],
)
def test_language_from_environment(tmp_path: Path, environ, cmdline, expected) -> None:
    (tmp_path / "cmdline").write_text(cmdline + "\n")
    assert i18n.language_from_environment(environ, tmp_path / "cmdline") == expected


def test_set_language_reaches_children_and_argparse() -> None:
    assert i18n.set_language("ja") == "ja"
    assert os.environ[i18n.ENV] == "ja" and os.environ["LANGUAGE"] == "ja"
    import argparse

    assert argparse._("usage: ") == "使い方: "  # argparse's own words, from our catalog
    assert i18n.set_language("klingon") == "en"
    assert i18n._("Install Engine") == "Install Engine"


def test_all_translations_for_searching() -> None:
    assert i18n.all_translations("Japanese (106/109 keys)") == [
        "Japanese (106/109 keys)",
        "日本語 (106/109 キー)",
    ]


@pytest.mark.parametrize(
    "command",
    [
        ["-m", "engine_installer", "--help"],
        ["-c", "from engine_installer.usb.cli import main; main()", "write", "--help"],
        ["-c", "from engine_installer.iso.cli import main; main()", "build", "--help"],
    ],
    ids=["engine-installer", "engine-usb", "engine-iso"],
)
def test_help_in_japanese_fits_80_columns(command: list[str]) -> None:
    env = dict(os.environ, COLUMNS="80", **{i18n.ENV: "ja"})
    out = subprocess.run(
        [sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("使い方: ")
    assert "オプション:" in out and "このヘルプを表示して終了する" in out
    assert max(cells(line) for line in out.splitlines()) <= 80, out


def test_wrap_cells_breaks_japanese_between_characters_and_keeps_brackets() -> None:
    text = "何も変更しない: ディスクへの処理を表示する (--answers と併用) か、画面を実行する"
    lines = wrap_cells(text, 30)
    assert all(cells(line) <= 30 for line in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")
    assert not any(line.startswith((")", "、", "。")) for line in lines)
