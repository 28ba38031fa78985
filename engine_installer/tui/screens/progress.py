"""Progress: phase, percent, speed and time left from the backend's events.

Events arrive on a worker thread; they are coalesced (only the newest matters) and handed to
the main thread with app.post(), so a chatty backend cannot flood or block the UI.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import urwid

from engine_installer.base.progress import ProgressEvent
from engine_installer.tui import widgets as W
from engine_installer.tui.screens.base import Screen, pile

log = logging.getLogger("engine_installer.tui")
BYTE_PHASE = 1024 * 1024  # totals above this are bytes (speed and time left make sense)
BAR_WIDTH = 50


class ProgressScreen(Screen):
    title = "Installing"
    hints = "Please wait; do not switch the laptop off"
    allows_back = False

    def build(self) -> urwid.Widget:
        prepared = self.app.prepared
        verb = {
            "upgrade": "Upgrading to",
            "downgrade": "Downgrading to",
            "reinstall": "Reinstalling",
            "repair": "Repairing",
        }.get(prepared.kind, "Installing")
        what = self.app.media.label() if prepared.kind != "repair" else "the Engine disk"
        self.heading = W.text(("title", f"{verb} {what} on {self.app.plan.target}"))
        self.total_weight = sum(a.weight for a in prepared.actions) or 1
        self.weight_done = 0
        self.step_weight = 0
        self.phase = W.text("Starting…")
        self.bar = urwid.Text("")
        self.detail = urwid.Text("")
        self.done_list = urwid.Text("")
        self._lock = threading.Lock()
        self._pending: ProgressEvent | None = None
        self._phase_name = ""
        self._phase_start = 0.0
        self._finished: list[str] = []
        self._last_message = ""
        self.events_shown = 0
        return pile(
            [
                urwid.Divider(),
                self.heading,
                urwid.Divider(),
                self.phase,
                urwid.Divider(),
                self.bar,
                self.detail,
                urwid.Divider(),
                self.done_list,
                self.message,
            ]
        )

    def on_show(self) -> None:
        self.app.background(
            lambda: self.app.backend.run(self.app.prepared, self.relay),
            self.finished,
            self.failed,
        )

    def relay(self, event: ProgressEvent) -> None:
        """Called on the worker thread: keep the newest event, wake the UI once."""
        with self._lock:
            wake = self._pending is None
            self._pending = event
        if wake:
            self.app.post(self.flush)

    def flush(self) -> None:
        with self._lock:
            event, self._pending = self._pending, None
        if event is not None:
            self.show_event(event)

    def show_event(self, event: ProgressEvent) -> None:
        now = time.monotonic()
        if event.step and event.message:  # a step starts: "Step i of N: title"
            if self._phase_name:
                self._finished.append(self._last_message)
                self.weight_done += self.step_weight
            self._phase_name, self._phase_start = event.phase, now
            self._last_message = event.step_line
            self.step_weight = event.total
            log.info("%s", event.step_line)
        self.events_shown += 1
        self.phase.set_text(W.t(self._last_message or event.phase))
        overall = (self.weight_done + event.done) / self.total_weight
        self.bar.set_text(W.bar_markup(overall, BAR_WIDTH))
        detail = ""
        if event.total >= BYTE_PHASE and event.done and not event.step:
            elapsed = max(now - self._phase_start, 1e-3)
            speed = event.done / elapsed
            left = (event.total - event.done) / speed if speed > 0 else 0
            detail = (
                f"{W.size_text(event.done)} of {W.size_text(event.total)}   "
                f"{W.size_text(speed)}/s   about {left:.0f} s left"
            )
        self.detail.set_text(detail)
        done = self._finished[-6:]
        self.done_list.set_text(("dim", W.t("\n".join(f"✓ {m}" for m in done))))

    def finished(self, result: Any) -> None:
        self.flush()
        self.app.result = result
        log.info(
            "finished: %s %s on %s slot %s", result.action, result.version, result.disk, result.slot
        )
        if result.report is not None:
            for line in result.report.lines():
                log.info("report: %s", line)
        self.app.forward()

    def failed(self, message: str) -> None:
        self.app.fail(message, retry="summary")
