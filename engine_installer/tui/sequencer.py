"""Screen sequencer in the spirit of XenServer's uicontroller.

Each step is a screen class plus a predicate deciding whether it shows for the session (the
UI's state, session.py), and a predicate saying whether it is complete enough to move forward
from. Screens call
forward()/back(); steps whose predicate is false are skipped either way; transient steps (the
detection spinner) are not kept in the history, so Back jumps over them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def _always(_session: Any) -> bool:
    return True


@dataclass
class Step:
    name: str
    screen: Callable[[Any], Any]  # screen class: Screen(app) → has .widget
    shows: Callable[[Any], bool] = _always  # given the session
    complete: Callable[[Any], bool] = _always  # may we leave it forwards? (the session)
    transient: bool = False  # not kept in the back history
    final: bool = False  # no way back past it (the install has started)


class Sequencer:
    def __init__(self, steps: list[Step], app: Any, show: Callable[[Step, Any], None]):
        self.steps = steps
        self.app = app
        self._show = show
        self.index = -1
        self.history: list[int] = []
        self.screen: Any = None

    @property
    def current(self) -> Step | None:
        return self.steps[self.index] if 0 <= self.index < len(self.steps) else None

    def start(self) -> None:
        self.index, self.history = -1, []
        self.forward()

    def _enter(self, index: int) -> None:
        self.index = index
        step = self.steps[index]
        self.screen = step.screen(self.app)
        self._show(step, self.screen)

    def forward(self) -> bool:
        step = self.current
        if step is not None:
            if not step.complete(self.app.session):
                return False
            if step.final:
                self.history = []
            elif not step.transient:
                self.history.append(self.index)
        for index in range(self.index + 1, len(self.steps)):
            if self.steps[index].shows(self.app.session):
                self._enter(index)
                return True
        return False

    def back(self) -> bool:
        step = self.current
        if step is None or step.final:
            return False
        while self.history:
            index = self.history.pop()
            if self.steps[index].shows(self.app.session):
                self._enter(index)
                return True
        return False

    def redraw(self) -> None:
        """Build the current step's screen again (its words changed: another language)."""
        if self.current is not None:
            self._enter(self.index)

    def goto(self, name: str) -> None:
        """Jump to a named step (retry after an error), keeping the history up to it."""
        index = next(i for i, s in enumerate(self.steps) if s.name == name)
        self.history = [i for i in self.history if i < index]
        self._enter(index)
