"""Why prepare() will not run a plan, as data, and the words each face uses for it.

prepare() returns Refusal objects; it never words them. The text UI shows `sentence()` (what is
wrong and what the technician can do on screen), answer files and the CLIs show `hint()` (the
same, naming the answer-file key to change). Every refusal the product can give is listed here,
once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine_installer.base.errors import RefusedError, UserError
from engine_installer.base.i18n import N_, _

# code → (sentence for the screens, hint for answer files). {placeholders} come from detail.
# Both are translated where they are shown (po/*.po); answer-file keys stay as they are.
WORDS: dict[str, tuple[str, str]] = {
    "eula": (
        N_("The licence agreement was not accepted."),
        N_('the licence agreement was not accepted: set eula = "accepted" in [install]'),
    ),
    "no-target": (
        N_("No disk was chosen."),
        N_('no target disk chosen: set target = "/dev/..." in [install]'),
    ),
    "unknown-disk": (
        N_("{disk} is not a disk of this laptop."),
        N_("{disk} is not a disk on this machine: name a whole disk such as /dev/sda (see lsblk)"),
    ),
    "boot-medium": (
        N_("{disk} is the boot medium the installer runs from."),
        N_("{disk} is the boot medium this installer runs from: choose another disk"),
    ),
    "being-written": (
        "Another Engine installer (process {pid}) is writing {disk}. Wait for it to finish.",
        "another Engine installer (process {pid}) is writing {disk}: wait for it to finish, or "
        "choose another disk",
    ),
    "in-use": (
        N_("{disk} is in use ({reason})."),
        N_("{disk} is in use ({reason}): unmount or release it, or choose another disk"),
    ),
    "read-only": (
        N_("{disk} is read-only."),
        N_("{disk} is read-only: choose a writable disk or remove write-protect"),
    ),
    "too-small": (
        N_("{disk} is too small ({size}; Engine {version} needs {need})."),
        N_(
            "{disk} is too small ({size}; Engine {version} needs at least {need}): choose a "
            "bigger disk"
        ),
    ),
    "hardware": (
        N_("This laptop failed the hardware check: {reason}"),
        N_(
            "this machine failed the hardware check ({reason}); set lab_override = true in "
            "[install] only on a lab machine"
        ),
    ),
    "not-blank": (
        N_("{disk} is not empty ({reason}). Choose it on the target list to erase it."),
        N_(
            '{disk} is not empty ({reason}); action = "auto" installs only on a blank disk: use '
            'action = "install" to erase it'
        ),
    ),
    "holds-engine": (
        N_(
            "{disk} already holds Engine {version} with {vms} VM(s). Upgrade keeps them; Remove "
            "and reinstall erases them."
        ),
        N_(
            '{disk} already holds Engine {version} with {vms} VM(s): use action = "upgrade" to '
            'keep them or "reinstall" to erase them'
        ),
    ),
    "no-engine": (
        N_("{disk} holds no Engine to upgrade ({reason})."),
        N_('{disk} holds no Engine to upgrade ({reason}): use action = "install"'),
    ),
    "needs-repair": (
        N_("The Engine disk {disk} needs a repair first: {reason}. Repair keeps its VMs."),
        N_(
            "{disk} holds Engine with a damaged disk structure ({reason}); its VMs are intact: "
            'repair it first with action = "repair", then upgrade'
        ),
    ),
    "nothing-to-repair": (
        N_("Nothing on {disk} needs a repair ({reason})."),
        N_('{disk} needs no repair ({reason}): use action = "auto" or "upgrade"'),
    ),
    "not-repairable": (
        N_("The Engine install on {disk} cannot be repaired: {reason}."),
        N_(
            '{disk} cannot be repaired ({reason}): use action = "reinstall" to erase it and '
            "install afresh"
        ),
    ),
    "damaged": (
        N_(
            "The Engine install on {disk} is damaged: {reason}. Only Remove and reinstall can fix"
            " it; that erases its VMs."
        ),
        N_(
            '{disk} holds a damaged Engine install ({reason}): use action = "reinstall" to erase '
            "it and install afresh"
        ),
    ),
    "downgrade": (
        N_(
            "{disk} holds Engine {version}, newer than this medium's {media}. A downgrade stops "
            "these VMs: {vms}. Tick the confirmation to downgrade anyway."
        ),
        N_(
            "{disk} holds Engine {version}, newer than this medium's {media}; a downgrade stops "
            "VMs published for the newer Engine: {vms}; set allow_downgrade = true in [install] "
            "to do it anyway"
        ),
    ),
    "slot-too-small": (
        N_(
            "Engine {media} does not fit slot {slot} of {disk}; only Remove and reinstall can re-"
            "partition it (that erases the VMs)."
        ),
        N_(
            'Engine {media} does not fit slot {slot} of {disk}: use action = "reinstall" to re-'
            "partition it (erases the VMs)"
        ),
    ),
    "kernel-args": (
        "The kernel arguments cannot be used: {reason}.",
        "{reason}",
    ),
    "slot-mounted": (
        N_(
            "Slot {slot} of {disk} ({partition}) is mounted at {mountpoint}, and the update "
            "would write it. Restart Engine first."
        ),
        N_(
            "slot {slot} of {disk} ({partition}) is mounted at {mountpoint} and the update would "
            "write it: unmount it, or restart first if Engine runs from it (a trial boot not yet "
            "marked good)"
        ),
    ),
    "running-action": (
        N_(
            "An update of the running Engine can only upgrade it; to {action} {disk}, start from "
            "a boot medium."
        ),
        N_(
            "an update kit only upgrades the running Engine ({action} was asked): {action} "
            "{disk} from a boot medium"
        ),
    ),
    "disk-changed": (
        N_("{disk} changed since it was checked ({reason}). Go back and check it again."),
        N_("{disk} changed while the installer was preparing ({reason}): run the installer again"),
    ),
}

# The update kit's words (engine-update, a CLI on a running Engine) where the answer-file hint
# names keys or screens the kit does not have; every other code reads its hint(). (Not in the
# catalogs: engine-update speaks English.)
KIT_WORDS: dict[str, str] = {
    "downgrade": (
        "the kit holds Engine {media}, older than the running Engine {version}; a downgrade "
        "stops VMs published for the newer Engine: {vms}: use a kit of Engine {version} or newer"
    ),
    "hardware": (
        "this laptop failed the hardware check ({reason}): pass --lab-override only on a lab "
        "machine"
    ),
    "slot-too-small": (
        "Engine {media} does not fit slot {slot} of {disk}: only a reinstall from a boot medium "
        "can re-partition the disk (it erases the VMs)"
    ),
    "no-engine": "{disk} holds no Engine to update ({reason}): name the Engine disk with --disk",
    "needs-repair": (
        "the Engine disk {disk} needs a repair first ({reason}): repair it from a boot medium, "
        "then apply the kit again"
    ),
    "damaged": (
        "the Engine install on {disk} is damaged ({reason}): only a reinstall from a boot "
        "medium can fix it"
    ),
    "boot-medium": "{disk} is the boot medium this system runs from: name the Engine disk",
}

# Refusals caused by what the user asked (bad input) rather than by protecting a disk.
INPUT_CODES = frozenset({"eula", "no-target", "unknown-disk"})


@dataclass(frozen=True)
class Refusal:
    code: str
    disk: str = ""
    detail: dict[str, str] = field(default_factory=dict)

    def _fill(self, template: str) -> str:
        return template.format(disk=self.disk, **self.detail)

    def sentence(self) -> str:
        """For the screens: a sentence a technician can act on without an answer file."""
        return self._fill(_(WORDS[self.code][0]))

    def hint(self) -> str:
        """For answer files and CLIs: problem and the key to change (no trailing period)."""
        return self._fill(_(WORDS[self.code][1]))

    def kit_hint(self) -> str:
        """For engine-update: the hint, in the kit's words where the CLI's differ."""
        return self._fill(KIT_WORDS[self.code]) if self.code in KIT_WORDS else self.hint()

    def error(self, kit: bool = False) -> UserError:
        """The exception a CLI raises for it (exit 2 for bad input, 3 for refusals)."""
        cls = UserError if self.code in INPUT_CODES else RefusedError
        return cls(self.kit_hint() if kit else self.hint())
