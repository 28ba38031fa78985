"""The live system's small top layer: the installer, its pinned libraries, units and data.

Rebuilt on every `engine-iso build` (seconds), stacked by live-boot above the cached base
(/live/filesystem.squashfs < /live/installer.squashfs, in name order). The libraries come as
wheels built on the host with `pip wheel` (the host is bookworm with the same Python 3.11 and
libparted as the live system), cached by the pinned requirement list, and are installed into
/opt/engine-installer/site with `pip install --no-index` so the image never reaches a network.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from engine_installer.base.errors import UserError
from engine_installer.iso.base import mksquashfs, read_list, recipe_dir, repo_root

SITE = "opt/engine-installer/site"
DATA = "usr/share/engine-installer"
LAUNCHER = """\
#!/usr/bin/python3
# {name}: the Engine installer's own copy of its code and pinned libraries.
import os
import sys

sys.path.insert(0, "/{site}")
# Child processes (the TUI's install worker: python3 -m engine_installer.tui.worker) too.
os.environ["PYTHONPATH"] = "/{site}"
from {module} import {func}

sys.exit({func}())
"""
LAUNCHERS = {
    "usr/local/bin/engine-installer": ("engine_installer.autoinstall", "main"),
    "usr/local/bin/engine-iso": ("engine_installer.iso.cli", "main"),
    "usr/lib/engine-installer/check-medium": ("engine_installer.iso.live_check", "main"),
    "usr/lib/engine-installer/netboot-setup": ("engine_installer.iso.live_netboot", "main"),
}


def pinned_requirements(root: Path | None = None) -> list[str]:
    with open((root or repo_root()) / "pyproject.toml", "rb") as handle:
        return sorted(tomllib.load(handle)["project"]["dependencies"])


def _say(message: str) -> None:
    print(f"engine-iso: {message}", file=sys.stderr, flush=True)


def _pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", *args]
    try:
        subprocess.run(cmd, check=True)
    except subprocess.CalledProcessError as err:
        raise UserError(
            f"pip {args[0]} failed (exit {err.returncode}): see its output above; building "
            "wheels needs PyPI and libparted-dev (`make setup`)"
        ) from None


def build_wheels(cache: Path) -> Path:
    """The pinned libraries and their dependencies as wheels, cached by the pin list and
    this Python's version (the live system runs the same Debian Python)."""
    requirements = pinned_requirements()
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    key = hashlib.sha256("\n".join([tag, *requirements]).encode()).hexdigest()[:16]
    wheels = cache / f"wheels-{key}"
    if (wheels / ".complete").is_file():
        return wheels
    _say(f"building wheels for {', '.join(requirements)}")
    partial = cache / f"wheels-{key}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    _pip("wheel", "--wheel-dir", str(partial), *requirements)
    (partial / ".complete").write_text("\n".join(requirements) + "\n")
    shutil.rmtree(wheels, ignore_errors=True)
    partial.rename(wheels)
    return wheels


def _copy_tree(source: Path, target: Path) -> None:
    shutil.copytree(
        source,
        target,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )


def _link_to_null(directory: Path, names: list[str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        link = directory / name
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")


def mask_units(stage: Path, units: list[str]) -> None:
    """Mask systemd units in the layer: /etc/systemd/system/<unit> -> /dev/null."""
    _link_to_null(stage / "etc/systemd/system", units)


def mask_generators(stage: Path, generators: list[str]) -> None:
    """Disable systemd generators: /etc/systemd/system-generators/<name> -> /dev/null."""
    _link_to_null(stage / "etc/systemd/system-generators", generators)


def stage_app(stage: Path, wheels: Path, epoch: int) -> None:
    """Fill `stage` with everything the top layer holds."""
    root = repo_root()
    site = stage / SITE
    _pip("install", "--no-index", "--find-links", str(wheels), "--target", str(site),
         "--no-compile", "--no-warn-script-location", *pinned_requirements())  # fmt: skip
    shutil.rmtree(site / "bin", ignore_errors=True)  # scripts with the host's shebang
    _copy_tree(root / "engine_installer", site / "engine_installer")
    build_catalogs(root / "po", site / "engine_installer" / "locale")
    # Byte-compile once here (the live root is read-only underneath). Unchecked-hash .pyc
    # files are identical on every build and trusted as they are: Python neither reads nor
    # hashes the source to validate them (the image never changes), which saves seconds of
    # imports under emulation.
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(epoch))
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j", "1", "-s", str(stage), "-p", "/",
         "--invalidation-mode", "unchecked-hash", str(site)],
        check=True, env=env,
    )  # fmt: skip
    _copy_tree(recipe_dir() / "overlay", stage)
    mask_units(stage, read_list(recipe_dir() / "masked-units"))
    mask_generators(stage, read_list(recipe_dir() / "masked-generators"))
    for relpath, (module, func) in LAUNCHERS.items():
        path = stage / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(LAUNCHER.format(name=path.name, site=SITE, module=module, func=func))
        path.chmod(0o755)
    data = stage / DATA
    data.mkdir(parents=True, exist_ok=True)
    for source in sorted((root / "iso-build").glob("eula*.txt")):  # eula.txt, eula.ja.txt
        shutil.copyfile(source, data / source.name)
    if (root / "hw-profiles").is_dir():
        _copy_tree(root / "hw-profiles", data / "hw-profiles")


def build_catalogs(po_dir: Path, locale_dir: Path) -> list[Path]:
    """Compile every po/<lang>.po into <locale_dir>/<lang>/LC_MESSAGES/engine_installer.mo
    (GNU msgfmt, which also checks that each translation keeps its {placeholders})."""
    if shutil.which("msgfmt") is None:
        raise UserError("msgfmt is not installed: run `make setup` (it installs gettext)")
    shutil.rmtree(locale_dir, ignore_errors=True)  # a checkout's own build is not used
    built = []
    for po in sorted(po_dir.glob("*.po")):
        target = locale_dir / po.stem / "LC_MESSAGES" / "engine_installer.mo"
        target.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            ["msgfmt", "--check", "--output-file", str(target), str(po)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            detail = proc.stderr.strip().splitlines()
            raise UserError(
                f"msgfmt rejected {po} ({detail[-1] if detail else proc.returncode}): fix the "
                "translation and build again"
            )
        built.append(target)
    return built


def build_app_layer(work: Path, cache: Path, settings: dict, epoch: int) -> Path:
    """Build installer.squashfs in `work`; returns its path."""
    wheels = build_wheels(cache)
    stage = work / "app-stage"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    stage_app(stage, wheels, epoch)
    output = work / "installer.squashfs"
    mksquashfs(stage, output, settings, ["-all-root"])
    return output
