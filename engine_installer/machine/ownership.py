"""The installer's own temporary files and mounts, recognisable by name.

Everything an install step puts in the temp directory is named engine-<kind>-<pid>-...: a
mounted partition (mnt), GRUB's scratch filesystem (grub), a staged ESP or ESP file (esp). The
pid tells the mounts of an installer that still runs (another console is writing that disk) from
what a killed one left behind (cleaned up by the next run, never reported as "in use"), and lets
a run remove everything of its own on any exit path.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

MOUNT_PREFIX = "engine-mnt-"
SCRATCH_PREFIX = "engine-grub-"
ESP_PREFIX = "engine-esp-"
_OURS = re.compile(rf"^(?:{MOUNT_PREFIX}|{SCRATCH_PREFIX}|{ESP_PREFIX})(\d+)-")


def own_prefix(kind_prefix: str) -> str:
    """The temp-name prefix for this process: engine-mnt-1234-."""
    return f"{kind_prefix}{os.getpid()}-"


def owner_pid(path: str | Path) -> int | None:
    """The installer process that made this temp file, dir or mount point, or None."""
    for part in Path(path).parts:
        match = _OURS.match(part)
        if match:
            return int(match.group(1))
    return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
