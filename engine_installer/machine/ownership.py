"""The installer's own temporary mounts, recognisable by name: engine-mnt-<pid>-... (a mounted
partition) and engine-grub-<pid>-... (GRUB's scratch filesystem). The pid tells a mount of an
installer that still runs (another console is writing that disk) from one a killed installer
left behind (to be cleaned up, not reported as "in use")."""

from __future__ import annotations

import os
import re
from pathlib import Path

MOUNT_PREFIX = "engine-mnt-"
SCRATCH_PREFIX = "engine-grub-"
_OURS = re.compile(rf"^(?:{MOUNT_PREFIX}|{SCRATCH_PREFIX})(\d+)-")


def owner_pid(mountpoint: str | Path) -> int | None:
    """The installer process that made this mount point, or None if it is not one of ours."""
    for part in Path(mountpoint).parts:
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
