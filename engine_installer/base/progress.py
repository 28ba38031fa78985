"""Progress events: what every install step reports, for the screens, the CLIs and the log."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engine_installer.base.i18n import _


@dataclass(frozen=True)
class ProgressEvent:
    phase: str  # short machine name, e.g. "partition", "write-slot", "verify-slot", "bootloader"
    done: int  # bytes (or steps) done in this phase
    total: int  # bytes (or steps) in this phase; 0 when unknown
    message: str = ""  # one line a technician can read (a step's title when a step starts)
    step: int = 0  # this step's number in the action list (1-based; 0: not a step event)
    steps: int = 0  # how many steps the action list has

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0

    @property
    def step_line(self) -> str:
        """ "Step 3 of 8: Writing Engine 5.0 (build 50) into slot B" for a step's first event."""
        if not self.step:
            return self.message
        return _("Step {index} of {total}: {title}").format(
            index=self.step, total=self.steps, title=self.message
        )


ProgressCallback = Callable[[ProgressEvent], None]


def ignore_progress(_event: ProgressEvent) -> None:
    """Default callback for callers that do not show progress."""
