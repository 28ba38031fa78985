"""Per-stick progress: phase, percent, MB/s over a 2 s window, time left.

On a terminal the sticks' lines are redrawn in place; elsewhere (a log, a pipe) a line per stick
is printed now and then; with --json one JSON object per line for scripts.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from engine_installer.base.errors import detach_stdout

WINDOW = 2.0  # seconds of history behind the MB/s figure
REDRAW = 0.25  # seconds between terminal redraws
PLAIN_EVERY = 5.0  # seconds between lines when not on a terminal
JSON_EVERY = 0.5


class RateWindow:
    """Bytes per second over the last WINDOW seconds of (time, bytes done) samples."""

    def __init__(self, window: float = WINDOW) -> None:
        self.window = window
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, now: float, done: int) -> None:
        if self.samples and done < self.samples[-1][1]:  # a new phase restarted the count
            self.samples.clear()
        self.samples.append((now, done))
        # Keep one sample at or before the window's start so the span covers the whole window.
        while len(self.samples) > 2 and self.samples[1][0] <= now - self.window:
            self.samples.popleft()

    def rate(self) -> float:
        if len(self.samples) < 2:
            return 0.0
        (t0, d0), (t1, d1) = self.samples[0], self.samples[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 else 0.0


def eta_seconds(done: int, total: int, rate: float) -> float | None:
    if rate <= 0 or total <= 0:
        return None
    return max(0.0, (total - done) / rate)


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


@dataclass
class StickState:
    device: str
    phase: str = "waiting"
    done: int = 0
    total: int = 0
    window: RateWindow = field(default_factory=RateWindow)
    message: str = ""

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 0.0

    def line(self) -> str:
        if self.phase in ("done", "failed"):
            return f"{self.device:<14} {self.phase:<9} {self.message}"
        rate = self.window.rate()
        eta = format_eta(eta_seconds(self.done, self.total, rate))
        return (
            f"{self.device:<14} {self.phase:<9} {self.percent:5.1f}%  "
            f"{rate / 1e6:7.1f} MB/s  {eta} left"
        )

    def as_json(self) -> dict:
        rate = self.window.rate()
        eta = eta_seconds(self.done, self.total, rate)
        data = {
            "device": self.device,
            "phase": self.phase,
            "done": self.done,
            "total": self.total,
            "percent": round(self.percent, 1),
            "mb_per_s": round(rate / 1e6, 1),
            "eta_s": None if eta is None else round(eta, 1),
        }
        if self.message:
            data["message"] = self.message
        return data


class Progress:
    """Thread-safe; each stick's thread calls update(); the output style is chosen once."""

    def __init__(
        self,
        devices: list[str],
        json_lines: bool = False,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream or (sys.stdout if json_lines else sys.stderr)
        self.json_lines = json_lines
        self.tty = not json_lines and self.stream.isatty()
        self.clock = clock
        self.states = {device: StickState(device) for device in devices}
        self.lock = threading.Lock()
        self.last_draw = 0.0
        self.last_emit: dict[str, tuple[float, str, int]] = {}
        self.drawn_lines = 0
        self.closed = False

    def reporter(self, device: str) -> Callable[[str, int, int], None]:
        return lambda phase, done, total: self.update(device, phase, done, total)

    def update(self, device: str, phase: str, done: int, total: int, message: str = "") -> None:
        with self.lock:
            now = self.clock()
            state = self.states[device]
            if phase != state.phase:
                state.window = RateWindow()
            state.phase, state.done, state.total, state.message = phase, done, total, message
            state.window.add(now, done)
            final = phase in ("done", "failed")
            if self.json_lines:
                self._emit_json(state, now, final)
            elif self.tty:
                if final or done >= total or now - self.last_draw >= REDRAW:
                    self._redraw(now)
            else:
                self._emit_plain(state, now, final)

    def _changed_phase(self, state: StickState, now: float, every: float) -> bool:
        last_time, last_phase, last_done = self.last_emit.get(state.device, (-1e9, "", -1))
        if last_phase != state.phase:
            return True
        if state.done == last_done:
            return False
        return now - last_time >= every or state.done == state.total

    def _emit_json(self, state: StickState, now: float, final: bool) -> None:
        if final or self._changed_phase(state, now, JSON_EVERY):
            self.last_emit[state.device] = (now, state.phase, state.done)
            self._write(json.dumps(state.as_json()) + "\n")

    def _emit_plain(self, state: StickState, now: float, final: bool) -> None:
        if final or self._changed_phase(state, now, PLAIN_EVERY):
            self.last_emit[state.device] = (now, state.phase, state.done)
            self._write(state.line() + "\n")

    def _redraw(self, now: float) -> None:
        self.last_draw = now
        text = f"\x1b[{self.drawn_lines}A" if self.drawn_lines else ""
        text += "".join("\x1b[2K" + state.line() + "\n" for state in self.states.values())
        self.drawn_lines = len(self.states)
        self._write(text)

    def event(self, data: dict) -> None:
        """A non-progress record (the results) in the same output style."""
        with self.lock:
            if self.json_lines:
                self._write(json.dumps(data) + "\n")

    def _write(self, text: str) -> None:
        """A closed output (`| head`) stops the printing, never the writing of the sticks."""
        if self.closed:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except BrokenPipeError:
            self.closed = True
            if self.stream is sys.stdout:
                detach_stdout()
