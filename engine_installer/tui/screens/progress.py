"""Progress: "Step i of N: title" (the summary's words), the step's own bar with bytes and
speed, one overall bar weighted by bytes across all steps with the time left, and the steps
done so far.

Events arrive on a worker thread; they are coalesced (only the newest matters) and handed to
the main thread with app.post(), so a chatty backend cannot flood or block the UI. While this
screen runs the disk is being written: Esc, Ctrl-C and Ctrl-Alt-Del are ignored with a note.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import urwid

from engine_installer.base.i18n import N_, _
from engine_installer.base.progress import ProgressEvent
from engine_installer.tui import widgets as W
from engine_installer.tui.screens.base import Screen

log = logging.getLogger("engine_installer.tui")
BYTE_PHASE = 1024 * 1024  # totals above this are bytes (speed and time left make sense)
BAR_CELLS = 40  # the step bar; the overall bar plus time left fit one line beside it
SHOWN_DONE = 6  # finished steps listed (the log has all)
ESTIMATE_AFTER = 3.0  # seconds of progress before a time-left estimate means anything

VERBS = {
    "upgrade": N_("Upgrading to {what} on {disk}"),
    "downgrade": N_("Downgrading to {what} on {disk}"),
    "reinstall": N_("Reinstalling {what} on {disk}"),
    "repair": N_("Repairing the Engine disk {disk}"),
    "install": N_("Installing {what} on {disk}"),
}


class ProgressScreen(Screen):
    title = N_("Installing")
    hints = N_("Please wait; do not switch the laptop off")
    allows_back = False

    def build(self) -> urwid.Widget:
        prepared = self.session.prepared
        verb = VERBS.get(prepared.kind, VERBS["install"])
        heading = _(verb).format(what=self.session.media.label(), disk=self.session.plan.target)
        self.total_weight = sum(a.weight for a in prepared.actions) or 1
        self.weight_done = 0
        self.step_weight = 0
        self.step_line = W.text(_("Starting…"))
        self.step_bar = urwid.Text("")
        self.detail = urwid.Text("")
        self.overall = urwid.Text("")
        self.done_list = urwid.Text("")
        self._lock = threading.Lock()
        self._steps: list[ProgressEvent] = []
        self._bytes: ProgressEvent | None = None
        self._step_start = 0.0
        self._started = 0.0
        self._finished: list[str] = []
        self._current = ""
        self.steps_seen = 0  # step starts seen: the disk has been written once this is > 0
        self.events_shown = 0
        rows = [
            urwid.Divider(),
            W.text(("title", heading)),
            urwid.Divider(),
            self.step_line,
            self.step_bar,
            self.detail,
            urwid.Divider(),
            self.overall,
            urwid.Divider(),
            self.done_list,
        ]
        return self.layout(rows)

    def on_show(self) -> None:
        self._started = time.monotonic()
        self.app.writing_started()
        self.app.background(
            lambda: self.app.backend.run(self.session.prepared, self.relay),
            self.finished,
            self.failed,
        )

    def escape(self) -> bool:
        self.say(("warn", _("Esc is ignored while the disk is written; please wait.")))
        return True

    def relay(self, event: ProgressEvent) -> None:
        """Called on the worker thread: step events are kept in order, byte events coalesced
        (the newest wins); the UI is woken once per batch."""
        with self._lock:
            wake = not self._steps and self._bytes is None
            if event.step:
                if event.message:
                    self.steps_seen = max(self.steps_seen, event.step)
                self._steps.append(event)
                self._bytes = None  # older than the step event
            else:
                self._bytes = event
        if wake:
            self.app.post(self.flush)

    def flush(self) -> None:
        with self._lock:
            events = [*self._steps, *([self._bytes] if self._bytes else [])]
            self._steps, self._bytes = [], None
        for event in events:
            self.show_event(event)

    def show_event(self, event: ProgressEvent) -> None:
        now = time.monotonic()
        if event.step and event.message:  # a step starts: "Step i of N: title"
            if self._current:
                self._finished.append(self._current)
                self.weight_done += self.step_weight
            self._step_start = now
            self._current = event.step_line
            self.step_weight = event.total
            log.info("%s", event.step_line)
        self.events_shown += 1
        self.step_line.set_text(W.t(self._current or event.phase))
        self.step_bar.set_text(W.bar_markup(event.fraction, BAR_CELLS))
        detail = ""
        if event.total >= BYTE_PHASE and event.done and not event.step:
            elapsed = max(now - self._step_start, 1e-3)
            speed = event.done / elapsed
            detail = _("{done} of {total}   {speed}/s").format(
                done=W.size_text(event.done),
                total=W.size_text(event.total),
                speed=W.size_text(speed),
            )
        self.detail.set_text(detail)
        done_weight = self.weight_done + (event.done if not (event.step and event.message) else 0)
        fraction = min(1.0, done_weight / self.total_weight)
        overall: list[Any] = [_("All steps: ")]
        overall += W.bar_markup(fraction, BAR_CELLS - W.width(overall[0]))
        elapsed = now - self._started
        if fraction > 0.01 and elapsed >= ESTIMATE_AFTER and fraction < 1.0:
            left = elapsed / fraction * (1 - fraction)
            overall.append("   " + W.time_left(left))
        self.overall.set_text(overall)
        shown = self._finished[-SHOWN_DONE:]
        lines = []
        if len(self._finished) > SHOWN_DONE:
            earlier = len(self._finished) - SHOWN_DONE
            lines.append(_("… {count} earlier steps done").format(count=earlier))
        lines += [f"✓ {line}" for line in shown]
        self.done_list.set_text(("dim", W.t("\n".join(lines))))

    def finished(self, result: Any) -> None:
        self.flush()
        self.app.writing_ended()
        self.session.result = result
        log.info(
            "finished: %s %s on %s slot %s", result.action, result.version, result.disk, result.slot
        )
        if result.report is not None:
            for line in result.report.lines():
                log.info("report: %s", line)
        self.app.forward()

    def failed(self, message: str) -> None:
        self.app.writing_ended()
        started = self.steps_seen > 0
        self.session.log_saved_to = ""
        self.app.fail(message, back="summary")
        if self.app.screen is not None and hasattr(self.app.screen, "save_log"):
            self.app.screen.save_log(written=started)
