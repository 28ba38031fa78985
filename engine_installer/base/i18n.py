"""Translations: English and Japanese from gettext catalogs (po/*.po, built into .mo files).

Every string a technician reads goes through `_()` (or `N_()` where a constant is defined
and `_()` where it is shown). The language is chosen once per process from the environment
(`ENGINE_INSTALLER_LANG`, then `engine.lang=` on the kernel command line, then LANGUAGE /
LC_ALL / LC_MESSAGES / LANG, as gettext orders them) and may be switched at run time by the
text UI (screen 1). Switching also sets LANGUAGE and ENGINE_INSTALLER_LANG in this process's
environment: child processes (the install worker) and the standard library's own gettext
users (argparse's "usage:" and "options:") follow it.

The message ids are English, so English needs no catalog; a missing Japanese catalog falls
back to English (and the caller can tell: set_language() returns the language in effect).
"""

from __future__ import annotations

import gettext
import os
from pathlib import Path

DOMAIN = "engine_installer"
# Built by `make` (msgfmt) in a checkout, and by `engine-iso build` into the live system.
LOCALE_DIR = Path(__file__).resolve().parents[1] / "locale"
DEFAULT = "en"
# Language code → its own name, as a language line or boot menu shows it.
LANGUAGES = {"en": "English", "ja": "日本語"}
ENV = "ENGINE_INSTALLER_LANG"
CMDLINE_KEY = "engine.lang"
CMDLINE = Path("/proc/cmdline")

_state: dict[str, object] = {"lang": DEFAULT, "tr": gettext.NullTranslations()}


def _(message: str) -> str:
    """The message in the current language (the English id when it has no translation)."""
    return _state["tr"].gettext(message)  # type: ignore[attr-defined]


def N_(message: str) -> str:
    """Marks a constant for the catalog; it is translated with _() where it is shown."""
    return message


def ngettext(singular: str, plural: str, count: int) -> str:
    return _state["tr"].ngettext(singular, plural, count)  # type: ignore[attr-defined]


def language() -> str:
    return str(_state["lang"])


def normalize(code: str) -> str:
    """'ja_JP.UTF-8' → 'ja'; C, POSIX and anything unknown → '' (not a choice)."""
    base = code.strip().split(".")[0].split("@")[0].split("_")[0].lower()
    return base if base in LANGUAGES else ""


def cmdline_language(cmdline: str) -> str:
    """The last engine.lang= value on a kernel command line, normalized ('' if none)."""
    found = ""
    for arg in cmdline.split():
        if arg.startswith(CMDLINE_KEY + "="):
            found = normalize(arg.split("=", 1)[1])
    return found


def language_from_environment(
    environ: dict[str, str] | None = None, cmdline: Path = CMDLINE
) -> str:
    env = os.environ if environ is None else environ
    if env.get(ENV):
        return normalize(env[ENV]) or DEFAULT
    try:
        from_boot = cmdline_language(cmdline.read_text())
    except OSError:
        from_boot = ""
    if from_boot:
        return from_boot
    for key in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(key, "")
        if value:
            # LANGUAGE may list several ("ja:en"); the first one we have wins.
            for code in value.split(":"):
                if normalize(code):
                    return normalize(code)
            if key != "LANGUAGE":
                return DEFAULT  # LC_ALL=C means English even when LANG says otherwise
    return DEFAULT


def catalog_available(lang: str) -> bool:
    return lang == DEFAULT or (LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.mo").is_file()


def set_language(lang: str) -> str:
    """Switch this process (and its future children) to lang; returns the language in effect
    (English when lang is unknown or its catalog is missing)."""
    lang = normalize(lang) or DEFAULT
    if not catalog_available(lang):
        lang = DEFAULT
    if lang == DEFAULT:
        translation: gettext.NullTranslations = gettext.NullTranslations()
    else:
        translation = _catalog(lang)
    _state["lang"], _state["tr"] = lang, translation
    os.environ[ENV] = lang
    os.environ["LANGUAGE"] = lang
    # argparse and the rest of the standard library look messages up in the global domain.
    gettext.bindtextdomain(DOMAIN, str(LOCALE_DIR))
    gettext.textdomain(DOMAIN)
    return lang


def all_translations(message: str) -> list[str]:
    """message in every language there is a catalog for (English first): searches match
    what a technician types in either language, whatever the screens show."""
    found = [message]
    for lang in LANGUAGES:
        if lang == DEFAULT or not catalog_available(lang):
            continue
        text = _catalog(lang).gettext(message)
        if text not in found:
            found.append(text)
    return found


_catalogs: dict[str, gettext.NullTranslations] = {}


def _catalog(lang: str) -> gettext.NullTranslations:
    if lang not in _catalogs:
        _catalogs[lang] = gettext.translation(DOMAIN, LOCALE_DIR, languages=[lang])
    return _catalogs[lang]


def init_language() -> str:
    """Pick the language for this process from its environment (see the module docstring)."""
    return set_language(language_from_environment())
