"""The installer log: every step goes to /var/log/engine-installer/ (ENGINE_INSTALLER_LOG_DIR
overrides it, e.g. in tests) and is copied onto the installed storage partition at the end."""

from __future__ import annotations

import logging
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

DEFAULT_LOG_DIR = Path("/var/log/engine-installer")
LOGGER_NAME = "engine_installer"

log = logging.getLogger(LOGGER_NAME)


def log_dir() -> Path:
    return Path(os.environ.get("ENGINE_INSTALLER_LOG_DIR", str(DEFAULT_LOG_DIR)))


def start_log(name: str = "install") -> Path:
    """Attach a fresh log file for this run (replacing an earlier one) and return its path."""
    directory = log_dir()
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    path = directory / f"{name}-{stamp}.log"
    for handler in list(log.handlers):
        if getattr(handler, "_engine_run_log", False):
            log.removeHandler(handler)
            handler.close()
    handler = logging.FileHandler(path)
    handler._engine_run_log = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return path


def current_log() -> Path | None:
    for handler in log.handlers:
        if getattr(handler, "_engine_run_log", False):
            return Path(handler.baseFilename)
    return None


def copy_log_to(target_dir: Path) -> Path | None:
    """Copy the current log into target_dir (engine/logs/ on the mounted storage partition)."""
    source = current_log()
    if source is None:
        return None
    for handler in log.handlers:
        handler.flush()
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / source.name
    shutil.copyfile(source, target)
    return target
