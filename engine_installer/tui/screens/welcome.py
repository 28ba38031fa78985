"""Screen 2, welcome: the Engine on this medium and the machine's compatibility summary.

A failed hardware check blocks installing unless a lab override is ticked (and logged).
"""

from __future__ import annotations

import logging
from typing import Any

import urwid

from engine_installer.tui import widgets as W
from engine_installer.tui.screens.base import Screen, pile

log = logging.getLogger("engine_installer.tui")
MAX_ITEMS = 4  # check items shown on the welcome screen
STATUS_ATTR = {"pass": "good", "ok": "good", "warn": "warn", "fail": "error"}


class WelcomeScreen(Screen):
    title = "2/5 Welcome"

    def build(self) -> urwid.Widget:
        media = self.app.media
        self.compat = urwid.Pile([W.text("")])
        self.override = urwid.CheckBox(
            W.t("Lab override: install anyway (logged)"), state=self.app.plan.lab_override
        )
        self.override_slot = urwid.WidgetPlaceholder(urwid.Text(""))
        self.buttons = W.button_row(
            [W.button("Back", self.go_back), W.button("Continue", self.next)], focus=1
        )
        return pile(
            [
                W.text(("title", f"Welcome to the {media.label()} installer.")),
                urwid.Divider(),
                W.text(
                    "This installs Engine on a disk of this laptop, or upgrades the Engine "
                    "already on it, keeping its VMs and data."
                ),
                urwid.Divider(),
                W.text(f"Machine: {self.app.backend_machine_name()}"),
                self.compat,
                self.override_slot,
                urwid.Divider(),
                self.message,
                self.buttons,
            ],
            focus=9,
        )

    def on_show(self) -> None:
        if self.app.hw_loaded:
            self.show_report(self.app.hw)
            return
        self.compat.contents[:] = [(W.text(("dim", "Checking this machine…")), ("pack", None))]
        self.app.background(self.app.backend.hardware, self.loaded, self.failed)

    def loaded(self, report: Any) -> None:
        self.app.hw, self.app.hw_loaded = report, True
        log.info("hardware check: %s %s", report.profile_name, report.verdict)
        self.show_report(report)

    def failed(self, message: str) -> None:
        self.app.hw_loaded = True
        self.compat.contents[:] = [
            (W.text(("warn", f"Compatibility check unavailable: {message}")), ("pack", None))
        ]

    def show_report(self, report: Any) -> None:
        if report is None:  # the hardware-profile module is not part of this build
            self.compat.contents[:] = []
            return
        verdict = report.verdict
        profile = f"{report.profile_name} profile" if report.profile_name else "no profile for it"
        header = W.text(
            [
                "Compatibility: ",
                (STATUS_ATTR.get(verdict, "warn"), verdict.upper()),
                f"  ({profile})",
            ]
        )
        header.set_wrap_mode("ellipsis")
        lines = [header]
        secure_boot = getattr(report, "secure_boot", "")
        if secure_boot:
            bios = secure_boot == "unsupported"
            lines.append(
                W.text(f"Secure Boot: {'unsupported (BIOS boot)' if bios else secure_boot}")
            )
        # Failures first, one line each: the screen must fit 80x24 (the log has every line).
        problems = sorted(
            (i for i in report.items if i.status != "pass"), key=lambda i: i.status != "fail"
        )
        for item in problems:
            log.info("hardware check %s: %s: %s", item.status, item.name, item.message)
        for item in problems[:MAX_ITEMS]:
            line = W.text(
                [
                    (STATUS_ATTR.get(item.status, "warn"), f"  {item.status}: "),
                    f"{item.name}: {item.message}",
                ]
            )
            line.set_wrap_mode("ellipsis")
            lines.append(line)
        if len(problems) > MAX_ITEMS:
            lines.append(W.text(("dim", f"  … {len(problems) - MAX_ITEMS} more in the log")))
        self.compat.contents[:] = [(w, ("pack", None)) for w in lines]
        if verdict == "fail":
            self.override_slot.original_widget = self.override

    def blocked_reason(self) -> str:
        report = self.app.hw
        if report is None or report.verdict != "fail" or self.override.get_state():
            return ""
        failed = [i for i in report.items if i.status == "fail"]
        return failed[0].message if failed else "the machine failed its hardware check"

    def next(self, *_args: Any) -> None:
        reason = self.blocked_reason()
        if reason:
            self.say(("error", f"Cannot install on this machine: {reason}"))
            return
        override = self.app.hw is not None and self.app.hw.verdict == "fail"
        self.app.plan.lab_override = override
        if override:
            log.warning("LAB OVERRIDE: installing despite a failed hardware check")
        self.app.forward()
