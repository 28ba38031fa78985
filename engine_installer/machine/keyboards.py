"""Console keyboard layouts: what the live system ships (kbd / console-data keymaps)."""

from __future__ import annotations

import os
from pathlib import Path

from engine_installer.base.errors import UserError
from engine_installer.base.i18n import N_, _, all_translations

# Always offered, even on a developer machine without keymaps installed.
COMMON_LAYOUTS = ("us", "gb", "de", "fr", "es", "it", "jp106")

# Human names of the console keymaps (console-data's i386 set), translated where shown;
# a keymap without a name here is listed by its code. Searching matches the code, the English
# name and the translated name, so "japan", 「日本」 and "jp106" all find jp106.
NAMES: dict[str, str] = {
    "us": N_("English (US)"),
    "us-intl.iso01": N_("English (US, international, Latin-1)"),
    "us-intl.iso15": N_("English (US, international, Latin-9)"),
    "us-latin1": N_("English (US, Latin-1)"),
    "uk": N_("English (UK)"),
    "gb": N_("English (UK)"),
    "dvorak": N_("English (Dvorak)"),
    "jp106": N_("Japanese (106/109 keys)"),
    "de": N_("German"),
    "de-latin1": N_("German (Latin-1)"),
    "de-latin1-nodeadkeys": N_("German (no dead keys)"),
    "sg": N_("German (Switzerland)"),
    "sg-latin1": N_("German (Switzerland, Latin-1)"),
    "fr": N_("French"),
    "fr-latin1": N_("French (Latin-1)"),
    "fr-latin9": N_("French (Latin-9)"),
    "fr-pc": N_("French (PC)"),
    "fr_CH": N_("French (Switzerland)"),
    "fr_CH-latin1": N_("French (Switzerland, Latin-1)"),
    "cf": N_("French (Canada)"),
    "be-latin1": N_("Belgian"),
    "nl": N_("Dutch"),
    "es": N_("Spanish"),
    "la-latin1": N_("Spanish (Latin America)"),
    "pt-latin1": N_("Portuguese"),
    "br-abnt2": N_("Portuguese (Brazil, ABNT2)"),
    "it": N_("Italian"),
    "it2": N_("Italian (alternative)"),
    "dk": N_("Danish"),
    "dk-latin1": N_("Danish (Latin-1)"),
    "no": N_("Norwegian"),
    "no-latin1": N_("Norwegian (Latin-1)"),
    "se-lat6": N_("Swedish"),
    "se-latin1": N_("Swedish (Latin-1)"),
    "fi": N_("Finnish"),
    "fi-latin1": N_("Finnish (Latin-1)"),
    "is-latin1": N_("Icelandic"),
    "et": N_("Estonian"),
    "lt": N_("Lithuanian"),
    "lv-latin4": N_("Latvian"),
    "pl": N_("Polish"),
    "pl2": N_("Polish (alternative)"),
    "cz-lat2": N_("Czech"),
    "cz-us-qwertz": N_("Czech (QWERTZ)"),
    "sk-qwertz": N_("Slovak"),
    "sk-qwerty": N_("Slovak (QWERTY)"),
    "hu": N_("Hungarian"),
    "hu101": N_("Hungarian (101 keys)"),
    "ro": N_("Romanian"),
    "slovene": N_("Slovenian"),
    "croat": N_("Croatian"),
    "sr-cy": N_("Serbian (Cyrillic)"),
    "mk": N_("Macedonian"),
    "bg": N_("Bulgarian"),
    "gr": N_("Greek"),
    "trq": N_("Turkish (Q)"),
    "trqu": N_("Turkish (Q, Unicode)"),
    "trf": N_("Turkish (F)"),
    "trfu": N_("Turkish (F, Unicode)"),
    "ru": N_("Russian"),
    "ru-ms": N_("Russian (Microsoft)"),
    "ua": N_("Ukrainian"),
    "ua-utf": N_("Ukrainian (Unicode)"),
    "uaw_uni": N_("Ukrainian (Windows, Unicode)"),
    "by": N_("Belarusian"),
    "kk": N_("Kazakh"),
    "kg": N_("Kyrgyz"),
    "il": N_("Hebrew"),
    "hebrew": N_("Hebrew (phonetic)"),
    "ar": N_("Arabic"),
    "fa": N_("Persian"),
    "th-tis": N_("Thai"),
}
# The layout a language's laptops usually have: offered first until one is chosen.
LANGUAGE_LAYOUTS = {"ja": "jp106", "en": "us"}

KEYMAP_DIRS = (Path("/usr/share/keymaps"), Path("/usr/share/kbd/keymaps"))
KEYMAP_SUFFIXES = (".kmap.gz", ".map.gz", ".kmap", ".map")


def _strip_suffix(name: str) -> str | None:
    for suffix in KEYMAP_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


def available_layouts(keymap_dirs: tuple[Path, ...] = KEYMAP_DIRS) -> list[str]:
    """Sorted layout names: the common ones plus every i386 keymap found on this system."""
    names = set(COMMON_LAYOUTS)
    for base in keymap_dirs:
        i386 = base / "i386"
        if not i386.is_dir():
            continue
        for root, _dirs, files in os.walk(i386):
            if "include" in Path(root).parts:
                continue
            for file in files:
                layout = _strip_suffix(file)
                if layout:
                    names.add(layout)
    return sorted(names)


def keymap_path(layout: str, keymap_dirs: tuple[Path, ...] = KEYMAP_DIRS) -> Path | None:
    """The keymap file for a layout, or None when this system ships none (common layouts)."""
    for base in keymap_dirs:
        i386 = base / "i386"
        if not i386.is_dir():
            continue
        for root, _dirs, files in os.walk(i386):
            for file in files:
                if _strip_suffix(file) == layout:
                    return Path(root) / file
    return None


def check_layout(layout: str, keymap_dirs: tuple[Path, ...] = KEYMAP_DIRS) -> str:
    if layout in available_layouts(keymap_dirs):
        return layout
    raise UserError(
        f"unknown keyboard layout '{layout}': use one of {', '.join(COMMON_LAYOUTS)} "
        "or another console keymap name (engine-installer keyboards lists them)"
    )


def layout_name(layout: str) -> str:
    """The human name of a layout in the current language, or '' when it has none."""
    name = NAMES.get(layout, "")
    return _(name) if name else ""


def layout_matches(layout: str, query: str) -> int:
    """How well layout matches a search: 2 its code or a name starts with it, 1 it is in
    them, 0 no match. Case does not matter; its name in every language counts ("japan" and
    「日本」 both find jp106, whichever language the screens are in)."""
    query = query.strip().casefold()
    if not query:
        return 1
    name = NAMES.get(layout, "")
    words = [layout.casefold(), *(n.casefold() for n in all_translations(name) if name)]
    if any(w.startswith(query) for w in words if w):
        return 2
    if any(query in w for w in words if w):
        return 1
    return 0
