"""Finished: what was installed, the upgrade report's lists (VMs needing a manual PV-driver
upgrade, VMs that will not run), remove the media, reboot; the log is one button away."""

from __future__ import annotations

from typing import Any

import urwid

from engine_installer.base.i18n import N_, _
from engine_installer.tui import widgets as W
from engine_installer.tui.screens.base import Screen
from engine_installer.tui.screens.existing import vm_kind

HEADLINES = {
    "upgrade": N_("Upgraded {disk} to {label}; it boots from slot {slot}."),
    "downgrade": N_("Downgraded {disk} to {label}; it boots from slot {slot}."),
    "reinstall": N_("Reinstalled {label} on {disk} (erased); it boots from slot {slot}."),
    "repair": N_("Repaired {disk}: Engine {version} boots from slot {slot}."),
    "install": N_("Installed {label} on {disk}; it boots from slot {slot}."),
}


class DoneScreen(Screen):
    title = N_("Finished")
    allows_back = False
    hints = N_("Remove the installation media, then Enter: reboot")

    def build(self) -> urwid.Widget:
        res = self.session.result
        label = _("Engine {version} (build {build})").format(version=res.version, build=res.build)
        headline = _(HEADLINES.get(res.action, HEADLINES["install"])).format(
            disk=res.disk, label=label, slot=res.slot, version=res.version
        )
        rows: list[Any] = [urwid.Divider(), W.text(("good", headline))]
        if res.previous_version and res.action in ("upgrade", "downgrade"):
            rows.append(
                W.text(
                    _("Engine {version} stays in the other slot as the fallback.").format(
                        version=res.previous_version
                    )
                )
            )
        rows.append(urwid.Divider())
        report = res.report
        needing = report.vms_needing_pv_upgrade if report else []
        blocked = report.vms_that_will_not_run if report else []
        if needing:
            rows.append(W.text(("warn", _("These VMs need a manual PV-driver upgrade:"))))
            for vm in needing:
                rows.append(
                    W.text(
                        "  • "
                        + _("{name} ({kind}, PV {driver})").format(
                            name=vm.name, kind=vm_kind(vm.kind), driver=vm.pv_driver or "?"
                        )
                    )
                )
            rows.append(W.text(("dim", _("Shared images are updated by Engine itself."))))
        elif res.action in ("upgrade", "downgrade"):
            rows.append(W.text(_("No VM needs a manual PV-driver upgrade.")))
        if blocked:
            rows.append(
                W.text(
                    (
                        "error",
                        _("These VMs will not run on Engine {version}:").format(
                            version=res.version
                        ),
                    )
                )
            )
            for vm in blocked:
                rows.append(
                    W.text(
                        "  • "
                        + _("{name} ({kind}, for Engine {version})").format(
                            name=vm.name, kind=vm_kind(vm.kind), version=vm.published_for or "?"
                        )
                    )
                )
        if res.report_path:
            rows.append(W.text(("dim", _("Report: {path}").format(path=res.report_path))))
        rows += [
            urwid.Divider(),
            W.text(("title", _("Remove the installation media (DVD or USB stick), then reboot."))),
            W.text(
                ("dim", _("Log: {path}").format(path=res.log_path or self.app.backend.log_path))
            ),
        ]
        self.buttons = W.button_row(
            [
                W.button(_("Reboot"), lambda _b: self.app.power("reboot")),
                W.button(_("Power off"), lambda _b: self.app.power("poweroff")),
                W.button(_("View log"), lambda _b: self.app.view_log()),
            ],
            focus=0,
        )
        return self.layout(rows, self.buttons)
