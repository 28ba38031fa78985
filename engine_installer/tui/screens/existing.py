"""Screen 5, existing install: background detection, then upgrade / reinstall / new target.

Several steps share this screen number: detection (transient spinner), choosing among several
installs, the found install with its actions (or a downgrade warning), and, when no Engine is
found, choosing the target disk for a new install. What is offered is what prepare() accepts;
what it refuses is shown with its reason and cannot be chosen.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import urwid

from engine_installer.base.i18n import N_, _, ngettext
from engine_installer.install.plan import Action
from engine_installer.install.prepare import Prepared, prepare, target_refusals
from engine_installer.install.report import will_not_run
from engine_installer.machine.snapshot import DetectedInstall, DiskInfo
from engine_installer.tui import widgets as W
from engine_installer.tui.screens.base import Screen
from engine_installer.tui.session import Session

log = logging.getLogger("engine_installer.tui")

# Button labels by the kind prepare() decides (an upgrade of a newer Engine is a downgrade).
KIND_LABELS = {
    "upgrade": N_("Upgrade"),
    "downgrade": N_("Downgrade"),
    "repair": N_("Repair"),
    "reinstall": N_("Remove and reinstall"),
}
OFFERED_ACTIONS = (Action.UPGRADE, Action.REPAIR, Action.REINSTALL)
STATE_WORDS = {
    "upgradeable": N_("can be upgraded"),
    "same-version": N_("same version as this medium"),
    "newer-than-media": N_("NEWER than this medium"),
    "incomplete": N_("incomplete install"),
    "damaged": N_("damaged"),
    "repairable": N_("needs a repair (VMs intact)"),
    "foreign": N_("another system"),
}
KIND_WORDS = {"local": N_("local"), "custom": N_("custom"), "shared": N_("shared")}


def state_words(state: str) -> str:
    return _(STATE_WORDS[state]) if state in STATE_WORDS else state


def vm_kind(kind: str) -> str:
    return _(KIND_WORDS[kind]) if kind in KIND_WORDS else kind


def disk_name(disk: DiskInfo) -> str:
    return " ".join(p for p in (disk.vendor, disk.model) if p) or _("disk")


def candidate(session: Session, action: Action, target: str, allow_downgrade: bool) -> Prepared:
    """What prepare() would do with this choice (nothing is written)."""
    plan = replace(session.plan, action=action, target=target, allow_downgrade=allow_downgrade)
    return prepare(plan, session.machine, session.media)


class DetectScreen(Screen):
    title = N_("5/5 Existing installation")
    hints = N_("Please wait   Esc: back")

    def build(self) -> urwid.Widget:
        self.spinner = W.Spinner(_("Looking for existing Engine installations…"))
        self.running = False
        return urwid.Filler(
            urwid.Pile(
                [
                    self.spinner,
                    urwid.Divider(),
                    W.text(("dim", _("Disks are being probed; this can take a few seconds."))),
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
        session = self.session
        session.machine = machine
        found = session.engine_installs()
        session.chosen = found[0] if len(found) == 1 else None
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
        self.app.fail(message, back="detect")


def when(stamp: str) -> str:
    """'2024-03-14 10:22 UTC' from the marker's ISO time stamp (shown as-is if unparsable)."""
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp or _("unknown")
    return moment.strftime("%Y-%m-%d %H:%M") + (" UTC" if moment.utcoffset() is not None else "")


def install_lines(session: Session, inst: DetectedInstall) -> list[urwid.Widget]:
    disk = next((d for d in session.machine.disks if d.path == inst.disk), None)
    model = inst.model or (disk.model if disk else "")
    size = inst.size or (disk.size if disk else 0)
    rows = [
        (_("Disk:"), f"{inst.disk}  {model}  {W.gb(size)}"),
        (
            _("Found:"),
            _("Engine {version} (build {build}), {state}").format(
                version=inst.version or "?", build=inst.build or "?", state=state_words(inst.state)
            ),
        ),
        (
            _("Installed:"),
            _("{when}, boots slot {slot}").format(
                when=when(inst.installed_at), slot=inst.trial_slot or inst.active_slot or "?"
            ),
        ),
        (_("This medium:"), session.media.label()),
    ]
    if not inst.vms:
        rows.append((_("VMs on disk:"), _("none")))
    if inst.reason:
        rows.append((_("Note:"), inst.reason))
    return W.field_rows(rows)


class ChooseInstallScreen(Screen):
    title = N_("5/5 Existing installations")

    def build(self) -> urwid.Widget:
        found = self.session.engine_installs()
        self.items = []
        for inst in found:
            label = (
                f"{W.fit(inst.disk, 14)} "
                + _("Engine {version} (build {build})").format(
                    version=inst.version, build=inst.build
                )
                + f"  {state_words(inst.state)}"
            )
            self.items.append(W.SelectableItem(label, inst, self.choose))
        self.buttons = W.button_row([W.button(_("Back"), self.go_back)])
        rows: list[urwid.Widget] = [
            W.text(
                _(
                    "{count} Engine installations were found. Choose the one to upgrade or "
                    "replace:"
                ).format(count=len(found))
            ),
            urwid.Divider(),
            *self.items,
        ]
        widget = self.layout(rows, self.buttons, focus="content")
        current = next((i for i, it in enumerate(self.items) if it.value is self.session.chosen), 0)
        self.scroller.pile.focus_position = 2 + current
        return widget

    def choose(self, inst: DetectedInstall) -> None:
        self.session.chosen = inst
        self.app.forward()


class ExistingInstallScreen(Screen):
    title = N_("5/5 Existing installation")

    def build(self) -> urwid.Widget:
        session = self.session
        inst = session.chosen
        media = session.media
        self.downgrade = inst.state == "newer-than-media"
        self.blocked = will_not_run(inst.vms, media.version)
        rows: list[Any] = [W.text(("title", _("An Engine installation was found on this laptop:")))]
        rows += install_lines(session, inst)
        upgrade = candidate(session, Action.UPGRADE, inst.disk, allow_downgrade=True)
        rows += vm_lines(inst, media, upgrade.report)
        rows.append(urwid.Divider())
        self.confirm = W.CheckBox(_("I understand: downgrade anyway"))
        # Offer what prepare() accepts (a downgrade needs the tick); say why nothing else is.
        self.options: list[tuple[Action, str]] = []
        reasons: list[str] = []
        for action in OFFERED_ACTIONS:
            prepared = candidate(session, action, inst.disk, allow_downgrade=True)
            if prepared.ok:
                self.options.append((action, prepared.kind))
            else:
                reasons += [r.sentence() for r in prepared.refusals if r.code != "downgrade"]
        buttons = [
            W.button(_(KIND_LABELS[kind]), lambda _b, a=action: self.choose(a))
            for action, kind in self.options
        ]
        back = W.button(_("Back"), self.go_back)
        if self.downgrade:
            rows.append(
                W.text(
                    (
                        "error",
                        _(
                            "Downgrade: this medium has Engine {media}, older than the {found} "
                            "on the disk."
                        ).format(media=media.version, found=inst.version),
                    )
                )
            )
            rows.append(self.confirm)
            self.buttons = W.button_row([back, *buttons], focus=0)
            # Ticked, the way on is the downgrade (Down then Enter); unticked, it is Back.
            urwid.connect_signal(self.confirm.box, "postchange", self._ticked)
        elif not self.options:
            for reason in dict.fromkeys(reasons):
                rows.append(W.text(("error", reason)))
            self.buttons = W.button_row([back], focus=0)
        else:
            rows += [W.text(line) for line in self.explain()]
            self.buttons = W.button_row([*buttons, back], focus=0)
        return self.layout(rows, self.buttons)

    def _ticked(self, *_args: Any) -> None:
        labels = [label for _a, label in self.options]
        if self.confirm.get_state() and "downgrade" in labels:
            self.buttons.focus_position = 1 + labels.index("downgrade")
        else:
            self.buttons.focus_position = 0

    def explain(self) -> list[str]:
        kinds = [kind for _a, kind in self.options]
        words = []
        if "upgrade" in kinds:
            words.append(_("Upgrade keeps VMs and data."))
        if "repair" in kinds:
            words.append(_("Repair restores the damaged disk structures and keeps VMs and data."))
        if "reinstall" in kinds:
            words.append(_("Remove and reinstall erases the disk."))
        return words

    def choose(self, action: Action) -> None:
        session = self.session
        inst = session.chosen
        allow = self.downgrade and self.confirm.get_state()
        prepared = candidate(session, action, inst.disk, allow_downgrade=allow)
        if not prepared.ok:
            reason = prepared.refusals[0]
            log.warning("refused: %s", reason.hint())
            self.say(("error", reason.sentence()))
            return
        plan = session.plan
        plan.action, plan.target, plan.allow_downgrade = action, inst.disk, allow
        if prepared.kind == "downgrade":
            log.warning(
                "downgrade confirmed on %s (%s -> %s); VMs that stop running: %s",
                inst.disk,
                inst.version,
                session.media.version,
                ", ".join(vm.name for vm in self.blocked) or "none",
            )
        self.app.forward()


VM_NAME_CELLS = 24


def vm_lines(inst: DetectedInstall, media: Any, report: Any) -> list[urwid.Widget]:
    """Each VM with its kind and PV-driver version against the medium's (guide step 3), and
    what the upgrade report says of it."""
    if not inst.vms:
        return []
    stops = {vm.name for vm in (report.vms_that_will_not_run if report else [])}
    stops |= {vm.name for vm in will_not_run(inst.vms, media.version)}
    needs = {vm.name for vm in (report.vms_needing_pv_upgrade if report else [])}
    rows = [
        W.text(
            ngettext(
                "{count} VM on disk (PV drivers; this medium brings {driver}):",
                "{count} VMs on disk (PV drivers; this medium brings {driver}):",
                len(inst.vms),
            ).format(count=len(inst.vms), driver=media.pv_driver)
        )
    ]
    for vm in inst.vms:
        note: Any = ""
        if vm.name in stops:
            note = ("error", _("stops running (for {version})").format(version=vm.published_for))
        elif vm.name in needs:
            note = ("warn", _("needs a PV-driver upgrade"))
        line = (
            f"  {W.fit(vm.name, VM_NAME_CELLS)} {W.fit(vm_kind(vm.kind), 8)} "
            f"PV {W.fit(vm.pv_driver or '?', 7)} "
        )
        # The note wraps under itself, not under the name.
        rows.append(urwid.Columns([(W.width(line), W.text(line)), W.text(note)]))
        log.info(
            "VM %s: %s, PV drivers %s, published for %s",
            vm.name,
            vm.kind,
            vm.pv_driver,
            vm.published_for,
        )
    return rows


@dataclass
class TargetOption:
    """A disk on the target list: offered, or the sentence saying why not; what it holds."""

    disk: DiskInfo
    refusal: str  # "" when offered
    note: str  # what choosing it erases

    @property
    def offered(self) -> bool:
        return not self.refusal


def target_options(session: Session) -> list[TargetOption]:
    options = []
    for disk in session.machine.disks:
        refusals = target_refusals(disk, session.media)
        inst = next((i for i in session.machine.installs if i.disk == disk.path), None)
        note = ""
        if inst and not inst.is_engine:
            what = inst.reason or _("another system")
            note = _("holds {what}; it will be erased").format(what=what)
        elif inst:
            note = _("holds Engine {version}; it will be erased").format(version=inst.version)
        elif disk.partitions:
            note = ngettext(
                "has {count} partition; it will be erased",
                "has {count} partitions; they will be erased",
                len(disk.partitions),
            ).format(count=len(disk.partitions))
        reason = " ".join(r.sentence() for r in refusals)
        options.append(TargetOption(disk, reason, note))
    return options


class TargetScreen(Screen):
    """Every disk is listed: those prepare() would install on can be chosen; the others are
    shown with the reason and the focus skips them."""

    title = N_("5/5 Target disk")

    def build(self) -> urwid.Widget:
        self.options = target_options(self.session)
        self.items: list[W.SelectableItem] = []
        rows: list[urwid.Widget] = [
            W.text(
                _(
                    "No Engine installation was found. Choose the disk for a new install; "
                    "everything on it will be erased:"
                )
            ),
            urwid.Divider(),
        ]
        first = None
        for opt in self.options:
            if opt.offered:
                item = W.SelectableItem(self.disk_label(opt.disk), opt.disk.path, self.choose)
                self.items.append(item)
                first = len(rows) if first is None else first
                rows.append(item)
                if opt.note:
                    rows.append(W.text(("warn", "    " + opt.note)))
            else:
                rows.append(W.text(("dim", "  " + self.disk_label(opt.disk))))
                rows.append(
                    W.text(("dim", "    " + _("not offered: {why}").format(why=opt.refusal)))
                )
        if not self.items:
            rows += [
                urwid.Divider(),
                W.text(("error", _("No disk on this laptop can take Engine."))),
            ]
        self.buttons = W.button_row([W.button(_("Back"), self.go_back)])
        widget = self.layout(rows, self.buttons, focus="content")
        if first is not None:
            self.scroller.pile.focus_position = first
        return widget

    @staticmethod
    def disk_label(disk: DiskInfo) -> str:
        return f"{W.fit(disk.path, 14)} {W.fit(disk_name(disk), 34)} {W.gb(disk.size):>9}"

    def choose(self, path: str) -> None:
        plan = self.session.plan
        option = next(o for o in self.options if o.disk.path == path)
        if not option.offered:  # never: refused disks are not selectable
            self.say(("error", option.refusal))
            return
        plan.target, plan.action, plan.allow_downgrade = path, Action.INSTALL, False
        self.app.forward()
