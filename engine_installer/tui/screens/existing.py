"""Screen 5, existing install: background detection, then upgrade / reinstall / new target.

Three steps share this screen number: detection (transient spinner), choosing among several
installs, the found install with its actions (or a downgrade warning), and, when no Engine is
found, choosing the target disk for a new install.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import urwid

from engine_installer.base.errors import RefusedError
from engine_installer.install.plan import Action
from engine_installer.machine.snapshot import DetectedInstall
from engine_installer.tui import decisions
from engine_installer.tui import widgets as W
from engine_installer.tui.screens.base import Screen, pile

log = logging.getLogger("engine_installer.tui")

ACTION_LABELS = {Action.UPGRADE: "Upgrade", Action.REINSTALL: "Remove and reinstall"}
STATE_WORDS = {
    "upgradeable": "can be upgraded",
    "same-version": "same version as this medium",
    "newer-than-media": "NEWER than this medium",
    "incomplete": "incomplete install",
    "damaged": "damaged",
}


class DetectScreen(Screen):
    title = "5/5 Existing installation"
    hints = "Please wait   Esc: back"

    def build(self) -> urwid.Widget:
        self.spinner = W.Spinner("Looking for existing Engine installations…")
        self.running = False
        return urwid.Filler(
            urwid.Pile(
                [
                    self.spinner,
                    urwid.Divider(),
                    W.text(("dim", "Disks are being probed; this can take a few seconds.")),
                    self.message,
                ]
            ),
            valign="middle",
        )

    def on_show(self) -> None:
        self.running = True
        self.app.every(0.1, self.tick)
        self.app.background(self.app.backend.detect, self.done, self.failed)

    def tick(self) -> bool:
        if self.running:
            self.spinner.tick()
        return self.running

    def done(self, detection: Any) -> None:
        self.running = False
        self.app.detection = detection
        found = decisions.engine_installs(detection.installs)
        self.app.chosen = found[0] if len(found) == 1 else None
        log.info(
            "detected %d disk(s), %d Engine install(s): %s",
            len(detection.disks),
            len(found),
            ", ".join(f"{i.disk}={i.version}/{i.state}" for i in found),
        )
        if self.app.screen is self:
            self.app.forward()

    def failed(self, message: str) -> None:
        self.running = False
        self.app.fail(message, retry="detect")


def when(stamp: str) -> str:
    """'2024-03-14 10:22 UTC' from the marker's ISO time stamp (shown as-is if unparsable)."""
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp or "unknown"
    return moment.strftime("%Y-%m-%d %H:%M") + (" UTC" if moment.utcoffset() is not None else "")


def install_lines(app: Any, inst: DetectedInstall) -> list[urwid.Widget]:
    disk = next((d for d in app.detection.disks if d.path == inst.disk), None)
    model = inst.model or (disk.model if disk else "")
    size = inst.size or (disk.size if disk else 0)
    kinds = {k: sum(1 for v in inst.vms if v.kind == k) for k in ("local", "custom", "shared")}
    vms = ", ".join(f"{n} {k}" for k, n in kinds.items() if n) or "none"
    rows = [
        ("Disk:", f"{inst.disk}  {model}  {W.gb(size)}"),
        (
            "Found:",
            f"Engine {inst.version or '?'} (build {inst.build or '?'}), "
            f"{STATE_WORDS.get(inst.state, inst.state)}",
        ),
        ("Installed:", f"{when(inst.installed_at)}, active slot {inst.active_slot or '?'}"),
        ("This medium:", app.media.label()),
        ("VMs on disk:", f"{len(inst.vms)} ({vms})"),
    ]
    if inst.reason:
        rows.append(("Note:", inst.reason))
    return [urwid.Columns([(14, W.text(label)), W.text(value)]) for label, value in rows]


class ChooseInstallScreen(Screen):
    title = "5/5 Existing installations"

    def build(self) -> urwid.Widget:
        found = decisions.engine_installs(self.app.detection.installs)
        self.items = []
        for inst in found:
            label = (
                f"{inst.disk:<14} Engine {inst.version:<5} build {inst.build:<6} "
                f"{STATE_WORDS.get(inst.state, inst.state)}"
            )
            self.items.append(W.SelectableItem(label, inst, self.choose))
        self.list = urwid.ListBox(urwid.SimpleFocusListWalker(self.items))
        current = next((i for i, it in enumerate(self.items) if it.value is self.app.chosen), 0)
        self.list.set_focus(current)
        self.buttons = W.button_row([W.button("Back", self.go_back)])
        return pile(
            [
                W.text(
                    f"{len(found)} Engine installations were found. Choose the one to "
                    "upgrade or replace:"
                ),
                urwid.Divider(),
                ("weight", 1, self.list),
                self.buttons,
            ],
            focus=2,
        )

    def choose(self, inst: DetectedInstall) -> None:
        self.app.chosen = inst
        self.app.forward()


class ExistingInstallScreen(Screen):
    title = "5/5 Existing installation"

    def build(self) -> urwid.Widget:
        inst = self.app.chosen
        media_version = self.app.media.version
        self.downgrade = decisions.is_downgrade(inst, media_version)
        self.blocked = decisions.blocked_by_downgrade(inst.vms, media_version)
        rows: list[Any] = [W.text(("title", "An Engine installation was found on this laptop:"))]
        rows += install_lines(self.app, inst)
        rows.append(urwid.Divider())
        self.confirm = urwid.CheckBox(W.t("I understand: downgrade anyway"))
        buttons = [
            W.button(ACTION_LABELS[a], lambda _b, a=a: self.choose(a))
            for a in decisions.actions_for(inst)
        ]
        back = W.button("Back", self.go_back)
        if self.downgrade:
            rows.append(
                W.text(
                    (
                        "error",
                        f"Downgrade: this medium has Engine {media_version}, "
                        f"older than the {inst.version} on the disk.",
                    )
                )
            )
            if self.blocked:
                rows.append(
                    W.text("These VMs were published for a newer Engine and would stop " "running:")
                )
                rows += [
                    W.text(
                        ("warn", f"  • {vm.name} ({vm.kind}, for Engine " f"{vm.published_for})")
                    )
                    for vm in self.blocked[:4]
                ]
                if len(self.blocked) > 4:
                    rows.append(W.text(("warn", f"  … and {len(self.blocked) - 4} more")))
            rows.append(self.confirm)
            self.buttons = W.button_row([back, *buttons], focus=0)
        else:
            rows.append(W.text("Upgrade keeps VMs and data; Remove and reinstall erases the disk."))
            self.buttons = W.button_row([*buttons, back], focus=0)
        rows += [self.message, self.buttons]
        return pile(rows, focus=len(rows) - 1)

    def choose(self, action: Action) -> None:
        inst = self.app.chosen
        try:
            decisions.apply_choice(
                self.app.plan, inst, action, self.confirm.get_state(), self.app.media.version
            )
        except RefusedError as err:
            log.warning("refused: %s", err)
            text = str(err)
            self.say(("error", text[:1].upper() + text[1:] + "."))
            return
        if self.app.plan.allow_downgrade:
            log.warning(
                "downgrade confirmed on %s (%s -> %s); VMs that stop running: %s",
                inst.disk,
                inst.version,
                self.app.media.version,
                ", ".join(vm.name for vm in self.blocked) or "none",
            )
        self.app.forward()


class TargetScreen(Screen):
    title = "5/5 Target disk"

    def build(self) -> urwid.Widget:
        det = self.app.detection
        self.options = decisions.target_options(det.disks, det.installs, self.app.media.slot_size)
        offered = [o for o in self.options if o.offered]
        refused = [o for o in self.options if not o.offered]
        self.items = [
            W.SelectableItem(self.disk_label(o.disk), o.disk.path, self.choose) for o in offered
        ]
        rows: list[Any] = [
            W.text(
                "No Engine installation was found. Choose the disk for a new "
                "install; everything on it will be erased:"
            )
        ]
        notes: list[urwid.Widget] = []
        for opt in offered:
            if opt.note:
                notes.append(W.text(("warn", f"  {opt.disk.path}: {opt.note}")))
        for opt in refused:
            disk = opt.disk
            name = " ".join(p for p in (disk.vendor, disk.model) if p) or "disk"
            notes.append(
                W.text(
                    (
                        "dim",
                        f"  {disk.path} ({name}, {W.gb(disk.size)}): not offered, "
                        f"{opt.refusal}",
                    )
                )
            )
        if self.items:
            self.list = urwid.ListBox(urwid.SimpleFocusListWalker(self.items))
        else:
            self.list = urwid.ListBox(
                urwid.SimpleFocusListWalker(
                    [W.text(("error", "  No disk on this laptop can take Engine."))]
                )
            )
        self.buttons = W.button_row([W.button("Back", self.go_back)])
        height = max(1, min(len(self.items), 6))
        rows += [
            urwid.Divider(),
            urwid.BoxAdapter(self.list, height),
            urwid.Divider(),
            *notes,
            urwid.Divider(),
            self.message,
            self.buttons,
        ]
        return pile(rows, focus=2 if self.items else len(rows) - 1)

    @staticmethod
    def disk_label(disk: Any) -> str:
        name = " ".join(p for p in (disk.vendor, disk.model) if p) or "disk"
        return f"{disk.path:<14} {name[:34]:<34} {W.gb(disk.size):>9}"

    def choose(self, path: str) -> None:
        plan = self.app.plan
        plan.target, plan.action, plan.allow_downgrade = path, Action.INSTALL, False
        self.app.forward()
