"""Summary and confirmation: what prepare() decided, the steps it will run ("Step i of N: ..."
exactly as the progress screen and the log show them), what happens to the disk's data; Back
focused. A plan prepare() refuses is shown with its reason and only Back."""

from __future__ import annotations

import logging
from typing import Any

import urwid

from engine_installer.base.i18n import N_, _, ngettext
from engine_installer.install.actions import step_lines
from engine_installer.install.prepare import prepare
from engine_installer.tui import widgets as W
from engine_installer.tui.screens.base import Screen
from engine_installer.tui.screens.existing import disk_name

log = logging.getLogger("engine_installer.tui")

CONFIRM_LABELS = {
    "install": N_("Install Engine"),
    "upgrade": N_("Upgrade Engine"),
    "downgrade": N_("Downgrade Engine"),
    "reinstall": N_("Erase and reinstall"),
    "repair": N_("Repair the disk"),
}


class SummaryScreen(Screen):
    title = N_("Summary — confirm")

    def build(self) -> urwid.Widget:
        session, plan = self.session, self.session.plan
        self.prepared = prepared = prepare(plan, session.machine, session.media)
        session.prepared = prepared
        disk = prepared.disk
        inst = prepared.install
        rows: list[Any] = [W.text(("title", _("Please check before anything is written:")))]
        fields = []
        if disk is not None:
            fields.append((_("Disk:"), f"{disk.path}  {disk_name(disk)}  {W.gb(disk.size)}"))
        if not prepared.ok:
            rows += W.field_rows(fields)
            rows.append(urwid.Divider())
            for refusal in prepared.refusals:
                rows.append(W.text(("error", refusal.sentence())))
            self.buttons = W.button_row([W.button(_("Back"), self.go_back)], focus=0)
            return self.layout(rows, self.buttons)
        kind = prepared.kind
        if kind == "repair":
            engine = _("Engine {version}").format(version=prepared.previous_version)
        elif inst and inst.is_engine and inst.version:
            engine = f"{inst.version} → {session.media.label()}"
        else:
            engine = session.media.label()
        fields.append((_("Engine:"), engine))
        fields.append((_("Keyboard:"), plan.keyboard))
        if prepared.kernel_args:
            fields.append((_("Kernel args:"), " ".join(prepared.kernel_args)))
        rows += W.field_rows(fields)
        rows.append(urwid.Divider())
        rows += self.consequences(kind, disk.path, inst)
        if plan.lab_override:
            rows.append(W.text(("warn", _("Lab override: the hardware check failed (logged)."))))
        rows.append(urwid.Divider())
        rows.append(W.text(_("The installer will do these steps:")))
        rows += [W.text(("dim", "  " + line)) for line in step_lines(prepared.actions)]
        self.buttons = W.button_row(
            [W.button(_("Back"), self.go_back), W.button(_(CONFIRM_LABELS[kind]), self.confirm)],
            focus=0,
        )
        return self.layout(rows, self.buttons)

    def consequences(self, kind: str, disk: str, inst: Any) -> list[urwid.Widget]:
        media = self.session.media
        if kind == "upgrade":
            return [
                W.text(
                    ("good", _("Upgrade: the VMs and data on {disk} are kept.").format(disk=disk))
                ),
                W.text(
                    _(
                        "Engine {new} goes into the inactive slot; the current Engine {old} "
                        "stays as the fallback."
                    ).format(new=media.version, old=inst.version)
                ),
            ]
        if kind == "downgrade":
            report = self.prepared.report
            blocked = ", ".join(vm.name for vm in report.vms_that_will_not_run) if report else ""
            rows = [
                W.text(
                    (
                        "warn",
                        _("DOWNGRADE: Engine {old} → {new}.").format(
                            old=inst.version, new=media.version
                        ),
                    )
                ),
                W.text(
                    _(
                        "The VMs and data on {disk} are kept; Engine {old} stays as the fallback."
                    ).format(disk=disk, old=inst.version)
                ),
            ]
            if blocked:
                blocked_line = _("These VMs will not run: {names}").format(names=blocked)
                rows.append(W.text(("error", blocked_line)))
            return rows
        if kind == "repair":
            kept = _("Repair: the VMs and data on {disk} are kept.").format(disk=disk)
            return [W.text(("good", kept))]
        rows = [W.text(("error", _("ALL DATA ON {disk} WILL BE ERASED.").format(disk=disk)))]
        if inst and inst.is_engine:
            rows.append(
                W.text(
                    ngettext(
                        "Engine {version} and its {count} VM are removed for good.",
                        "Engine {version} and its {count} VMs are removed for good.",
                        len(inst.vms),
                    ).format(version=inst.version, count=len(inst.vms))
                )
            )
        elif inst:
            rows.append(W.text(_("It holds {what}; that is removed.").format(what=inst.reason)))
        return rows

    def on_show(self) -> None:
        self.session.plan.confirmed = False  # only the button below confirms

    def confirm(self, *_args: Any) -> None:
        self.session.plan.confirmed = True
        log.info("confirmed plan: %s", self.session.plan.describe())
        for line in step_lines(self.prepared.actions):
            log.info("confirmed: %s", line)
        self.app.forward()
