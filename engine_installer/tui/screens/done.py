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
            "reinstall": f"Reinstalled {label} on {res.disk} (erased); it boots from slot "
            f"{res.slot}.",
        }.get(res.action, f"Installed {label} on {res.disk}; it boots from slot {res.slot}.")
        rows: list[Any] = [urwid.Divider(), W.text(("good", headline))]
        if res.previous_version:
            rows.append(
                W.text(f"Engine {res.previous_version} stays in the other slot as the fallback.")
            )
        rows.append(urwid.Divider())
        if res.vms_needing_pv_upgrade:
            rows.append(W.text(("warn", "These VMs need a manual PV-driver upgrade:")))
            for vm in res.vms_needing_pv_upgrade[:7]:
                rows.append(W.text(f"  • {vm.name} ({vm.kind})"))
            if len(res.vms_needing_pv_upgrade) > 7:
                rows.append(
                    W.text(f"  … and {len(res.vms_needing_pv_upgrade) - 7} more " "(see the log)")
                )
            rows.append(W.text(("dim", "Shared images are updated by Engine itself.")))
        elif res.action == "upgrade":
            rows.append(W.text("No VM needs a manual PV-driver upgrade."))
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
