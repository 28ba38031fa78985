"""Screen 2, welcome: the Engine on this medium and the machine's hardware check.

Every check that did not pass is shown in full, wrapped (the fix is in its last words), failures
first; the screen scrolls when they do not fit. A failed check blocks installing unless the
lab override is ticked (and logged); prepare() refuses the plan the same way without it.
"""

from __future__ import annotations

import logging
from typing import Any

import urwid

from engine_installer.base.i18n import N_, _
from engine_installer.tui import widgets as W
from engine_installer.tui.screens.base import Screen

log = logging.getLogger("engine_installer.tui")
STATUS_ATTR = {"pass": "good", "ok": "good", "warn": "warn", "fail": "error"}
STATUS_WORDS = {"pass": N_("pass"), "warn": N_("warn"), "fail": N_("fail")}
VERDICT_WORDS = {"pass": N_("PASS"), "warn": N_("WARN"), "fail": N_("FAIL")}
SECURE_BOOT_WORDS = {"on": N_("on"), "off": N_("off"), "unsupported": N_("unsupported (BIOS boot)")}


class WelcomeScreen(Screen):
    title = N_("2/5 Welcome")

    def build(self) -> urwid.Widget:
        media = self.session.media
        self.compat = urwid.Pile([W.text("")])
        self.override = W.CheckBox(
            _("Lab override: install anyway (logged)"), state=self.session.plan.lab_override
        )
        self.override_slot = urwid.WidgetPlaceholder(urwid.Text(""))
        self.buttons = W.button_row(
            [W.button(_("Back"), self.go_back), W.button(_("Continue"), self.next)], focus=1
        )
        rows = [
            W.text(("title", _("Welcome to the {media} installer.").format(media=media.label()))),
            urwid.Divider(),
            W.text(
                _(
                    "This installs Engine on a disk of this laptop, or upgrades the Engine "
                    "already on it, keeping its VMs and data."
                )
            ),
            urwid.Divider(),
            W.text(_("Machine: {name}").format(name=self.app.backend.machine_name())),
            self.compat,
            self.override_slot,
        ]
        return self.layout(rows, self.buttons)

    def on_show(self) -> None:
        if self.session.hardware_checked:
            self.show_report(self.session.hardware)
            return
        self.compat.contents[:] = [(W.text(("dim", _("Checking this machine…"))), ("pack", None))]
        self.app.background(self.app.backend.hardware, self.loaded, self.failed)

    def loaded(self, report: Any) -> None:
        self.session.hardware, self.session.hardware_checked = report, True
        log.info("hardware check: %s %s", report.profile_name, report.verdict)
        for item in report.items:
            if item.status != "pass":
                log.info("hardware check %s: %s: %s", item.status, item.name, item.message)
        if self.app.screen is self:
            self.show_report(report)

    def failed(self, message: str) -> None:
        self.session.hardware_checked = True
        self.session.hardware_error = message
        if self.app.screen is self:
            self.show_report(None)

    def show_report(self, report: Any) -> None:
        if report is None:
            problem = _("Compatibility check unavailable: {error}").format(
                error=self.session.hardware_error or "?"
            )
            self.compat.contents[:] = [(W.text(("warn", problem)), ("pack", None))]
            return
        verdict = report.verdict
        profile = (
            _("{name} profile").format(name=report.profile_name)
            if report.profile_name
            else _("no profile for it")
        )
        lines: list[urwid.Widget] = [
            W.text(
                [
                    _("Compatibility: "),
                    (STATUS_ATTR.get(verdict, "warn"), _(VERDICT_WORDS.get(verdict, verdict))),
                    f"  ({profile})",
                ]
            )
        ]
        secure_boot = getattr(report, "secure_boot", "")
        if secure_boot:
            word = (
                _(SECURE_BOOT_WORDS[secure_boot])
                if secure_boot in SECURE_BOOT_WORDS
                else secure_boot
            )
            lines.append(W.text(_("Secure Boot: {state}").format(state=word)))
        problems = sorted(
            (i for i in report.items if i.status != "pass"), key=lambda i: i.status != "fail"
        )
        for item in problems:
            status = _(STATUS_WORDS.get(item.status, item.status))
            label = f"  {status}: "
            lines.append(
                urwid.Columns(
                    [
                        (W.width(label), W.text((STATUS_ATTR.get(item.status, "warn"), label))),
                        W.text(f"{item.name}: {item.message}"),
                    ]
                )
            )
        self.compat.contents[:] = [(w, ("pack", None)) for w in lines]
        if verdict == "fail":
            self.override_slot.original_widget = self.override
            self.scroller.refresh()

    def blocked_reason(self) -> str:
        report = self.session.hardware
        if report is None or report.verdict != "fail" or self.override.get_state():
            return ""
        failed = [i for i in report.items if i.status == "fail"]
        return failed[0].name if failed else "?"

    def next(self, *_args: Any) -> None:
        reason = self.blocked_reason()
        if reason:
            self.say(
                (
                    "error",
                    _(
                        "Cannot install on this machine: the {check} check failed (see above). "
                        "Tick the lab override only on a lab machine."
                    ).format(check=reason),
                )
            )
            return
        plan = self.session.plan
        report = self.session.hardware
        plan.lab_override = report is not None and report.verdict == "fail"
        if plan.lab_override:
            log.warning("LAB OVERRIDE: installing despite a failed hardware check")
        self.app.forward()
