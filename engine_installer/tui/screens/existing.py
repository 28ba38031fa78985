"""Screen 5, existing install: background detection, then upgrade / reinstall / new target.

Three steps share this screen number: detection (transient spinner), choosing among several
installs, the found install with its actions (or a downgrade warning), and, when no Engine is
found, choosing the target disk for a new install.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import Any

import urwid

from engine_installer.install.plan import Action
from engine_installer.install.prepare import Prepared, prepare, target_refusals
from engine_installer.install.report import will_not_run
from engine_installer.machine.snapshot import DetectedInstall
from engine_installer.tui import widgets as W
from engine_installer.tui.screens.base import Screen, pile

log = logging.getLogger("engine_installer.tui")

# Button labels by the kind prepare() decides (an upgrade of a newer Engine is a downgrade).
KIND_LABELS = {
    "upgrade": "Upgrade",
    "downgrade": "Downgrade",
    "repair": "Repair",
    "reinstall": "Remove and reinstall",
}
OFFERED_ACTIONS = (Action.UPGRADE, Action.REPAIR, Action.REINSTALL)
STATE_WORDS = {
    "upgradeable": "can be upgraded",
    "same-version": "same version as this medium",
    "newer-than-media": "NEWER than this medium",
    "incomplete": "incomplete install",
    "damaged": "damaged",
    "repairable": "needs a repair (VMs intact)",
}


def engine_installs(app: Any) -> list[DetectedInstall]:
    return [i for i in app.machine.installs if i.is_engine]


def candidate(app: Any, action: Action, target: str, allow_downgrade: bool) -> Prepared:
    """What prepare() would do with this choice (nothing is written)."""
    plan = replace(app.plan, action=action, target=target, allow_downgrade=allow_downgrade)
    return prepare(plan, app.machine, app.media)


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
        self.app.background(self.app.backend.snapshot, self.done, self.failed)

    def tick(self) -> bool:
        if self.running:
            self.spinner.tick()
        return self.running

    def done(self, machine: Any) -> None:
        self.running = False
        self.app.machine = machine
        found = engine_installs(self.app)
        self.app.chosen = found[0] if len(found) == 1 else None
        log.info(
            "detected %d disk(s), %d Engine install(s): %s",
            len(machine.disks),
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
    disk = next((d for d in app.machine.disks if d.path == inst.disk), None)
    model = inst.model or (disk.model if disk else "")
    size = inst.size or (disk.size if disk else 0)
    rows = [
        ("Disk:", f"{inst.disk}  {model}  {W.gb(size)}"),
        (
            "Found:",
            f"Engine {inst.version or '?'} (build {inst.build or '?'}), "
            f"{STATE_WORDS.get(inst.state, inst.state)}",
        ),
        (
            "Installed:",
            f"{when(inst.installed_at)}, boots slot {inst.trial_slot or inst.active_slot or '?'}",
        ),
        ("This medium:", app.media.label()),
    ]
    if not inst.vms:
        rows.append(("VMs on disk:", "none"))
    if inst.reason:
        rows.append(("Note:", inst.reason))
    return [urwid.Columns([(14, W.text(label)), W.text(value)]) for label, value in rows]


class ChooseInstallScreen(Screen):
    title = "5/5 Existing installations"

    def build(self) -> urwid.Widget:
        found = engine_installs(self.app)
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
        media = self.app.media
        self.downgrade = inst.state == "newer-than-media"
        self.blocked = will_not_run(inst.vms, media.version)
        rows: list[Any] = [W.text(("title", "An Engine installation was found on this laptop:"))]
        rows += install_lines(self.app, inst)
        upgrade = candidate(self.app, Action.UPGRADE, inst.disk, allow_downgrade=True)
        rows += vm_lines(inst, media, upgrade.report)
        rows.append(urwid.Divider())
        self.confirm = urwid.CheckBox(W.t("I understand: downgrade anyway"))
        # Offer what prepare() accepts (a downgrade needs the tick); say why nothing else is.
        self.options: list[tuple[Action, str]] = []
        reasons: list[str] = []
        for action in OFFERED_ACTIONS:
            prepared = candidate(self.app, action, inst.disk, allow_downgrade=True)
            if prepared.ok:
                self.options.append((action, prepared.kind))
            else:
                reasons += [r.sentence() for r in prepared.refusals if r.code != "downgrade"]
        buttons = [
            W.button(KIND_LABELS[kind], lambda _b, a=action: self.choose(a))
            for action, kind in self.options
        ]
        back = W.button("Back", self.go_back)
        if self.downgrade:
            rows.append(
                W.text(
                    (
                        "error",
                        f"Downgrade: this medium has Engine {media.version}, "
                        f"older than the {inst.version} on the disk.",
                    )
                )
            )
            rows.append(self.confirm)
            self.buttons = W.button_row([back, *buttons], focus=0)
        elif not self.options:
            for reason in dict.fromkeys(reasons):
                rows.append(W.text(("error", reason)))
            self.buttons = W.button_row([back], focus=0)
        else:
            rows.append(W.text(self.explain()))
            self.buttons = W.button_row([*buttons, back], focus=0)
        rows += [self.message, self.buttons]
        return pile(rows, focus=len(rows) - 1)

    def explain(self) -> str:
        kinds = [kind for _a, kind in self.options]
        words = []
        if "upgrade" in kinds:
            words.append("Upgrade keeps VMs and data")
        if "repair" in kinds:
            words.append("Repair restores the damaged disk structures and keeps VMs and data")
        if "reinstall" in kinds:
            words.append("Remove and reinstall erases the disk")
        return "; ".join(words) + "."

    def choose(self, action: Action) -> None:
        inst = self.app.chosen
        allow = self.downgrade and self.confirm.get_state()
        prepared = candidate(self.app, action, inst.disk, allow_downgrade=allow)
        if not prepared.ok:
            reason = prepared.refusals[0]
            log.warning("refused: %s", reason.hint())
            self.say(("error", reason.sentence()))
            return
        plan = self.app.plan
        plan.action, plan.target, plan.allow_downgrade = action, inst.disk, allow
        if prepared.kind == "downgrade":
            log.warning(
                "downgrade confirmed on %s (%s -> %s); VMs that stop running: %s",
                inst.disk,
                inst.version,
                self.app.media.version,
                ", ".join(vm.name for vm in self.blocked) or "none",
            )
        self.app.forward()


def vm_lines(inst: DetectedInstall, media: Any, report: Any) -> list[urwid.Widget]:
    """Each VM with its kind and PV-driver version against the medium's (guide step 3), and
    what the upgrade report says of it."""
    if not inst.vms:
        return []
    stops = {vm.name for vm in (report.vms_that_will_not_run if report else [])}
    stops |= {vm.name for vm in will_not_run(inst.vms, media.version)}
    needs = {vm.name for vm in (report.vms_needing_pv_upgrade if report else [])}
    rows = [
        W.text(f"VMs on disk: {len(inst.vms)} (PV drivers; this medium brings {media.pv_driver})")
    ]
    shown = 5 if len(inst.vms) <= 5 else 4
    for vm in inst.vms[:shown]:
        note = ""
        if vm.name in stops:
            note = ("error", f"stops running (for {vm.published_for})")
        elif vm.name in needs:
            note = ("warn", "needs a PV-driver upgrade")
        line = f"  {vm.name[:26]:<26} {vm.kind:<6} PV {vm.pv_driver or '?':<7} "
        rows.append(W.text([line, note] if note else line))
    if len(inst.vms) > shown:
        rows.append(W.text(("dim", f"  … and {len(inst.vms) - shown} more (see the log)")))
    for vm in inst.vms:
        log.info(
            "VM %s: %s, PV drivers %s, published for %s",
            vm.name,
            vm.kind,
            vm.pv_driver,
            vm.published_for,
        )
    return rows


class TargetScreen(Screen):
    title = "5/5 Target disk"

    def build(self) -> urwid.Widget:
        self.options = target_options(self.app)
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
                        f"  {disk.path} ({name}, {W.gb(disk.size)}): not offered: "
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


class TargetOption:
    """A disk on the target list: offered, or the sentence saying why not; what it holds."""

    def __init__(self, disk: Any, refusal: str, note: str):
        self.disk, self.refusal, self.note = disk, refusal, note

    @property
    def offered(self) -> bool:
        return not self.refusal


def target_options(app: Any) -> list[TargetOption]:
    options = []
    for disk in app.machine.disks:
        refusals = target_refusals(disk, app.media)
        inst = next((i for i in app.machine.installs if i.disk == disk.path), None)
        note = ""
        if inst and not inst.is_engine:
            note = f"{inst.reason or 'holds another system'}; it will be erased"
        elif inst:
            note = f"holds Engine {inst.version}; it will be erased"
        elif disk.partitions:
            note = f"has {len(disk.partitions)} partition(s); they will be erased"
        reason = refusals[0].sentence().rstrip(".") if refusals else ""
        options.append(TargetOption(disk, reason, note))
    return options
