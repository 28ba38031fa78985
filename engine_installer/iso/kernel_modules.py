"""Kernel modules no installer loads, taken out of the live system's root.

Debian's kernel package carries about 400 MB of modules: every one of them is on the medium,
downloaded by every network boot and read by every medium check. An installer needs storage,
USB, input, display and wired network drivers; the recipe's list
(iso-build/live/base-hooks/pruned-modules) names the module trees it never uses. A listed module
that a kept one depends on stays (i915 needs the CEC core from drivers/media, thinkpad_acpi the
sound core), so nothing left behind fails to load for want of a dependency.

The dependency graph is the kernel's own modules.dep; depmod then writes it again for what is
left. No library reads modules.dep (kmod's Python bindings are unmaintained), and its format is
one line per module: `path: dependency paths...`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path


def read_modules_dep(lines: Iterable[str]) -> dict[str, list[str]]:
    """modules.dep → {module path: the module paths it needs}."""
    deps: dict[str, list[str]] = {}
    for line in lines:
        module, colon, needs = line.partition(":")
        if colon:
            deps[module.strip()] = needs.split()
    return deps


def _listed(module: str, entries: list[str]) -> bool:
    """A list entry names a tree (kernel/sound) or one module file (kernel/lib/test_bpf.ko)."""
    return any(module == entry or module.startswith(entry.rstrip("/") + "/") for entry in entries)


def modules_to_prune(deps: dict[str, list[str]], entries: list[str]) -> list[str]:
    """The modules under `entries` that no kept module needs, directly or not."""
    needed = {module for module in deps if not _listed(module, entries)}
    pending = list(needed)
    while pending:  # modules.dep already lists indirect dependencies; the walk costs nothing
        for dependency in deps.get(pending.pop(), []):
            if dependency not in needed:
                needed.add(dependency)
                pending.append(dependency)
    return sorted(module for module in deps if module not in needed)


def prune_modules(root: Path, entries: list[str], say: Callable[[str], None]) -> None:
    """Remove the unneeded listed modules of every kernel under root; depmod again (the live
    system's own, in a chroot)."""
    for tree in sorted((root / "usr/lib/modules").iterdir()):
        deps = read_modules_dep((tree / "modules.dep").read_text().splitlines())
        pruned = modules_to_prune(deps, entries)
        removed = 0
        for module in pruned:
            path = tree / module
            removed += path.stat().st_size
            path.unlink()
        for directory in sorted(tree.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()
        subprocess.run(["chroot", str(root), "depmod", "-a", tree.name], check=True)
        say(
            f"kernel {tree.name}: {len(pruned)} of its {len(deps)} modules left out "
            f"({removed / 1e6:.0f} MB)"
        )
