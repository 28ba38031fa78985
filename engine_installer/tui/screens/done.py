"""Done: what was installed, VMs that need a manual PV-driver upgrade, remove media, reboot."""

from __future__ import annotations

from typing import Any

import urwid

from engine_installer.tui import widgets as W
from engine_installer.tui.screens.base import Screen, pile


class DoneScreen(Screen):
    title = "Finished"
    allows_back = False
    hints = "Remove the installation media, then Enter: reboot"

    def build(self) -> urwid.Widget:
        res = self.app.result
        label = f"Engine {res.version} (build {res.build})"
        headline = {
            "upgrade": f"Upgraded {res.disk} to {label}; it boots from slot {res.slot}.",
            "downgrade": f"Downgraded {res.disk} to {label}; it boots from slot {res.slot}.",
            "reinstall": f"Reinstalled {label} on {res.disk} (erased); it boots from slot "
            f"{res.slot}.",
            "repair": f"Repaired {res.disk}: Engine {res.version} boots from slot {res.slot}.",
        }.get(res.action, f"Installed {label} on {res.disk}; it boots from slot {res.slot}.")
        rows: list[Any] = [urwid.Divider(), W.text(("good", headline))]
        if res.previous_version and res.action in ("upgrade", "downgrade"):
            rows.append(
                W.text(f"Engine {res.previous_version} stays in the other slot as the fallback.")
            )
        rows.append(urwid.Divider())
        report = res.report
        needing = report.vms_needing_pv_upgrade if report else []
        blocked = report.vms_that_will_not_run if report else []
        if needing:
            rows.append(W.text(("warn", "These VMs need a manual PV-driver upgrade:")))
            for vm in needing[:6]:
                rows.append(W.text(f"  • {vm.name} ({vm.kind}, PV {vm.pv_driver or '?'})"))
            if len(needing) > 6:
                rows.append(W.text(f"  … and {len(needing) - 6} more (see the report)"))
            rows.append(W.text(("dim", "Shared images are updated by Engine itself.")))
        elif res.action in ("upgrade", "downgrade"):
            rows.append(W.text("No VM needs a manual PV-driver upgrade."))
        if blocked:
            names = ", ".join(vm.name for vm in blocked)
            rows.append(W.text(("error", f"These VMs will not run on {res.version}: {names}")))
        if res.report_path:
            rows.append(W.text(("dim", f"Report: {res.report_path}")))
        rows += [
            urwid.Divider(),
            W.text(("title", "Remove the installation media (DVD or USB stick), then reboot.")),
            W.text(("dim", f"Log: {res.log_path or self.app.backend.log_path}")),
            urwid.Divider(),
        ]
        self.buttons = W.button_row(
            [
                W.button("Reboot", lambda _b: self.app.power("reboot")),
                W.button("Power off", lambda _b: self.app.power("poweroff")),
            ],
            focus=0,
        )
        rows.append(self.buttons)
        return pile(rows, focus=len(rows) - 1)
