"""Summary and confirmation: what prepare() decided, the steps it will run, what happens to the
disk's data; Back focused. A plan prepare() refuses is shown with its reason and only Back."""

from __future__ import annotations

import logging
from typing import Any

import urwid

from engine_installer.install.actions import step_lines
from engine_installer.install.prepare import prepare
from engine_installer.tui import widgets as W
from engine_installer.tui.screens.base import Screen, pile

log = logging.getLogger("engine_installer.tui")

CONFIRM_LABELS = {
    "install": "Install Engine",
    "upgrade": "Upgrade Engine",
    "downgrade": "Downgrade Engine",
    "reinstall": "Erase and reinstall",
    "repair": "Repair the disk",
}


class SummaryScreen(Screen):
    title = "Summary — confirm"

    def build(self) -> urwid.Widget:
        app, plan = self.app, self.app.plan
        self.prepared = prepared = prepare(plan, app.machine, app.media)
        app.prepared = prepared
        disk = prepared.disk
        inst = prepared.install
        rows: list[Any] = [W.text(("title", "Please check before anything is written:"))]
        if disk is not None:
            name = " ".join(p for p in (disk.vendor, disk.model) if p)
            rows.append(self.field("Disk:", f"{disk.path}  {name}  {W.gb(disk.size)}"))
        if not prepared.ok:
            rows.append(urwid.Divider())
            for refusal in prepared.refusals:
                rows.append(W.text(("error", refusal.sentence())))
            self.buttons = W.button_row([W.button("Back", self.go_back)], focus=0)
            rows += [urwid.Divider(), self.buttons]
            return pile(rows, focus=len(rows) - 1)
        kind = prepared.kind
        before = f"{inst.version} → " if inst and inst.is_engine and inst.version else ""
        target = app.media.label() if kind != "repair" else f"Engine {prepared.previous_version}"
        rows.append(self.field("Engine:", before + target if kind != "repair" else target))
        rows.append(self.field("Keyboard:", plan.keyboard))
        if prepared.kernel_args:
            rows.append(self.field("Kernel args:", " ".join(prepared.kernel_args)))
        rows += self.consequences(kind, disk.path, inst)
        if plan.lab_override:
            rows.append(W.text(("warn", "Lab override: the hardware check failed (logged).")))
        steps = [W.text(("dim", line)) for line in step_lines(prepared.actions)]
        rows.append(("weight", 1, urwid.ListBox(urwid.SimpleFocusListWalker(steps))))
        self.buttons = W.button_row(
            [W.button("Back", self.go_back), W.button(CONFIRM_LABELS[kind], self.confirm)],
            focus=0,
        )
        rows.append(self.buttons)
        return pile(rows, focus=len(rows) - 1)

    def consequences(self, kind: str, disk: str, inst: Any) -> list[urwid.Widget]:
        media = self.app.media
        if kind == "upgrade":
            return [
                W.text(("good", f"Upgrade: the VMs and data on {disk} are kept.")),
                W.text(
                    f"Engine {media.version} goes into the inactive slot; the current Engine "
                    f"{inst.version} stays as the fallback."
                ),
            ]
        if kind == "downgrade":
            report = self.prepared.report
            blocked = ", ".join(vm.name for vm in report.vms_that_will_not_run) if report else ""
            rows = [
                W.text(("warn", f"DOWNGRADE: Engine {inst.version} → {media.version}.")),
                W.text(
                    f"The VMs and data on {disk} are kept; Engine {inst.version} stays as "
                    "the fallback."
                ),
            ]
            if blocked:
                rows.append(W.text(("error", f"These VMs will not run: {blocked}")))
            return rows
        if kind == "repair":
            return [W.text(("good", f"Repair: the VMs and data on {disk} are kept."))]
        rows = [W.text(("error", f"ALL DATA ON {disk} WILL BE ERASED."))]
        if inst and inst.is_engine:
            rows.append(
                W.text(f"Engine {inst.version} and its {len(inst.vms)} VM(s) are removed for good.")
            )
        elif inst:
            rows.append(W.text(f"It holds {inst.reason}; that is removed."))
        return rows

    @staticmethod
    def field(label: str, value: str) -> urwid.Widget:
        return urwid.Columns([(13, W.text(label)), W.text(value)])

    def on_show(self) -> None:
        self.app.plan.confirmed = False  # only the button below confirms

    def confirm(self, *_args: Any) -> None:
        self.app.plan.confirmed = True
        log.info("confirmed plan: %s", self.app.plan.describe())
        for line in step_lines(self.prepared.actions):
            log.info("confirmed: %s", line)
        self.app.forward()
