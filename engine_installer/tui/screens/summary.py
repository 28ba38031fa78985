"""Summary and confirmation: the disk, the action and what happens to its data; Back focused."""

from __future__ import annotations

import logging
from typing import Any

import urwid

from engine_installer.install.plan import Action
from engine_installer.tui import decisions
from engine_installer.tui import widgets as W
from engine_installer.tui.screens.base import Screen, pile

log = logging.getLogger("engine_installer.tui")

CONFIRM_LABELS = {
    Action.INSTALL: "Install Engine",
    Action.UPGRADE: "Upgrade Engine",
    Action.REINSTALL: "Erase and reinstall",
}


class SummaryScreen(Screen):
    title = "Summary — confirm"

    def build(self) -> urwid.Widget:
        app, plan = self.app, self.app.plan
        det = app.detection
        self.action = decisions.resolved_action(plan, det.installs)
        disk = next(d for d in det.disks if d.path == plan.target)
        inst = next(
            (i for i in decisions.engine_installs(det.installs) if i.disk == plan.target), None
        )
        name = " ".join(p for p in (disk.vendor, disk.model) if p)
        rows: list[Any] = [
            W.text(("title", "Please check before anything is written:")),
            urwid.Divider(),
            self.field("Disk:", f"{disk.path}  {name}  {W.gb(disk.size)}"),
            self.field(
                "Engine:",
                (f"{inst.version} → " if inst and self.action == Action.UPGRADE else "")
                + app.media.label(),
            ),
            self.field("Keyboard:", plan.keyboard),
        ]
        if plan.kernel_args:
            rows.append(self.field("Kernel args:", " ".join(plan.kernel_args)))
        rows.append(urwid.Divider())
        if self.action == Action.UPGRADE:
            rows.append(W.text(("good", f"Upgrade: the VMs and data on {disk.path} are kept.")))
            rows.append(
                W.text(
                    f"Engine {app.media.version} goes into the inactive slot; the "
                    f"current Engine {inst.version} stays as the fallback."
                )
            )
        else:
            rows.append(W.text(("error", f"ALL DATA ON {disk.path} WILL BE ERASED.")))
            if inst:
                rows.append(
                    W.text(
                        f"Engine {inst.version} and its {len(inst.vms)} VM(s) are "
                        "removed for good."
                    )
                )
            elif disk.partitions:
                rows.append(W.text(f"Its {len(disk.partitions)} partition(s) are removed."))
        if plan.allow_downgrade:
            rows.append(W.text(("warn", "This is a confirmed DOWNGRADE.")))
        if app.lab_override:
            rows.append(W.text(("warn", "Lab override: the hardware check failed (logged).")))
        self.buttons = W.button_row(
            [W.button("Back", self.go_back), W.button(CONFIRM_LABELS[self.action], self.confirm)],
            focus=0,
        )
        rows += [urwid.Divider(), self.buttons]
        return pile(rows, focus=len(rows) - 1)

    @staticmethod
    def field(label: str, value: str) -> urwid.Widget:
        return urwid.Columns([(13, W.text(label)), W.text(value)])

    def on_show(self) -> None:
        self.app.plan.confirmed = False  # only the button below confirms

    def confirm(self, *_args: Any) -> None:
        self.app.plan.confirmed = True
        log.info("confirmed plan: %s", self.app.plan.describe())
        self.app.forward()
