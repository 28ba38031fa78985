"""Console keyboard layouts: what the live system ships (kbd / console-data keymaps)."""

from __future__ import annotations

import os
from pathlib import Path

from engine_installer.base.errors import UserError

# Always offered, even on a developer machine without keymaps installed.
COMMON_LAYOUTS = ("us", "gb", "de", "fr", "es", "it", "jp106")

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
