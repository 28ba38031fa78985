"""Find and load the hardware profiles directory (hw-profiles/*.toml)."""

from __future__ import annotations

import functools
import os
import tomllib
from pathlib import Path

from engine_installer.base.errors import UserError
from engine_installer.hw.schema import Profile, parse_profile

ENV_VAR = "ENGINE_HW_PROFILES"
INSTALLED_DIR = Path("/usr/share/engine-installer/hw-profiles")


def default_profiles_dir() -> Path:
    """$ENGINE_HW_PROFILES, else the checkout's hw-profiles/, else the installed copy."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[2] / "hw-profiles"
    return checkout if checkout.is_dir() else INSTALLED_DIR


def load_profile(path: Path) -> Profile:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise UserError(f"hw profile {path} not found: check the path") from None
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"hw profile {path} is not valid TOML ({err}): fix the syntax") from None
    return parse_profile(data, path)


def load_profiles(directory: Path | None = None) -> list[Profile]:
    directory = Path(directory) if directory else default_profiles_dir()
    if not directory.is_dir():
        raise UserError(
            f"hardware profiles directory {directory} not found: set {ENV_VAR} to the "
            "hw-profiles directory"
        )
    files = tuple((p, p.stat().st_mtime_ns) for p in sorted(directory.glob("*.toml")))
    return list(_load_all(files))


@functools.lru_cache(maxsize=4)
def _load_all(files: tuple[tuple[Path, int], ...]) -> tuple[Profile, ...]:
    """Parsed profiles, cached per set of files and times: prepare() checks the machine each
    time a screen asks what it would do."""
    return tuple(load_profile(path) for path, _mtime in files)
