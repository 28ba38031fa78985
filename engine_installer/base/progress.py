"""Progress events: what every backend step reports, for the UI and the log."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ProgressEvent:
    phase: str  # short machine name, e.g. "partition", "write-slot", "verify-slot", "bootloader"
    done: int  # bytes (or steps) done in this phase
    total: int  # bytes (or steps) in this phase; 0 when unknown
    message: str = ""  # one line a technician can read

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


ProgressCallback = Callable[[ProgressEvent], None]


def ignore_progress(_event: ProgressEvent) -> None:
    """Default callback for callers that do not show progress."""
