"""The disk plan as data (the curtin pattern): an ordered list of actions, validated before
anything runs, shown by every face with the same words, and executed one by one by runner.py.

Each action names its target device, a title a technician reads ("Writing Engine 5.0 (build
50) into slot B"), a detail for the log, and says whether it destroys what is there (wipe) or
keeps it (preserve). Validation enforces the safety rules in one place: an upgrade never wipes
and never touches storage's VMs or the slot that boots today, and switches only after the new
slot is verified; an install marks itself complete last; an update of the running Engine (the
update kit) writes nothing but the inactive slot, the boot environment, the marker, the slot
options and Engine's own files on storage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine_installer.base.errors import UserError
from engine_installer.base.i18n import N_, _, ngettext
from engine_installer.ondisk.layout import (
    ALIGNMENT,
    ESP_NUMBER,
    LABEL_ESP,
    LABEL_STORAGE,
    SLOT_PARTITION_NUMBERS,
    STORAGE_NUMBER,
    PartitionSpec,
    compute_layout,
    partition_path,
    slot_other,
)
from engine_installer.ondisk.payload import Manifest

KINDS = (
    "partition",
    "format",
    "marker",
    "write-slot",
    "verify-slot",
    "bootloader",
    "bootchain",
    "slot-options",
    "bootenv",
    "config",
    "repair-table",
    "bios-boot",
    "save-report",
    "trust",
)
# What an update of the running Engine may do: never the boot loader, a table or a filesystem.
RUNNING_ENGINE_KINDS = frozenset(
    {"write-slot", "verify-slot", "slot-options", "marker", "bootenv", "config", "trust",
     "save-report"}
)  # fmt: skip
# Progress weight of a step that is not a byte copy, in "bytes": every step moves the bar.
SMALL_STEP = 8 * 1024 * 1024


@dataclass(frozen=True)
class DiskAction:
    kind: str
    target: str  # the device the action writes (or reads, for verify-slot)
    title: str  # what the technician reads: "Writing Engine 5.0 (build 50) into slot B"
    detail: str = ""  # the technical line for the log and the dry run
    params: dict[str, Any] = field(default_factory=dict)
    wipe: bool = False  # destroys what the target holds
    preserve: bool = False  # explicitly keeps what the target holds
    weight: int = SMALL_STEP  # share of the overall progress bar (bytes moved)


def _human(size: int) -> str:
    for unit, div in (("GiB", 1024**3), ("MiB", 1024**2)):
        if size >= div:
            return f"{size / div:.1f} {unit}"
    return f"{size} B"


def _slot_options(esp: str, slot: str, kernel_args: list[str], keyboard: str) -> DiskAction:
    verb = _("Setting the boot options of slot {slot}")
    args = " ".join(kernel_args) or "none"
    return DiskAction(
        "slot-options",
        esp,
        verb.format(slot=slot),
        f"slot {slot}: keyboard {keyboard}, kernel arguments: {args}",
        {"slot": slot, "kernel_args": list(kernel_args), "keyboard": keyboard},
    )


def _config(storage: str, manifest: Manifest, kernel_args: list[str], keyboard: str, new: bool):
    return DiskAction(
        "config",
        storage,
        _("Writing the Engine configuration") if new else _("Updating the Engine configuration"),
        f"engine/config.json on {storage}: keyboard {keyboard}, Engine {manifest.version} "
        f"build {manifest.build}",
        {"keyboard": keyboard, "kernel_args": list(kernel_args)},
    )


REPORT_TITLES = {
    "installation": N_("Saving the installation report and the log on the disk"),
    "upgrade": N_("Saving the upgrade report and the log on the disk"),
    "downgrade": N_("Saving the downgrade report and the log on the disk"),
    "repair": N_("Saving the repair report and the log on the disk"),
}


def _save_report(storage: str, what: str) -> DiskAction:
    return DiskAction(
        "save-report",
        storage,
        _(REPORT_TITLES[what]),
        f"engine/reports/ and engine/logs/ on {storage}",
    )


def _uefi_files(manifest: Manifest) -> str:
    if manifest.boot_chain:
        return (
            "Debian's signed shim and GRUB (Secure Boot) in EFI/debian and EFI/BOOT, firmware "
            "boot entry Engine"
        )
    return "EFI/BOOT/BOOTX64.EFI"


def _chain_words(versions: dict[str, str]) -> str:
    return ", ".join(f"{name} {version}" for name, version in sorted(versions.items()))


def bootchain_action(disk: str, manifest: Manifest, installed: dict[str, str]) -> DiskAction:
    esp = partition_path(disk, ESP_NUMBER)
    was = _chain_words(installed) if installed else "a GRUB without Secure Boot support"
    return DiskAction(
        "bootchain",
        esp,
        _("Updating the signed boot loader (Secure Boot)"),
        f"shim and GRUB on {esp} to {_chain_words(manifest.boot_chain)} (was {was}): EFI/debian "
        "then EFI/BOOT, new files beside the old, then renamed; firmware boot entry Engine",
        {"versions": dict(manifest.boot_chain)},
    )


def trust_action(storage: str, names: list[str]) -> DiskAction:
    """The medium's update-kit certificates into the trust store (docs/update-kit.md)."""
    title = ngettext(
        "Adding the medium's update-kit certificate to the trust store",
        "Adding the medium's {count} update-kit certificates to the trust store",
        len(names),
    ).format(count=len(names))
    return DiskAction(
        "trust",
        storage,
        title,
        f"engine/trust/ on {storage}: {', '.join(names)}",
        {"names": list(names)},
    )


def install_actions(
    disk: str,
    disk_size: int,
    manifest: Manifest,
    keyboard: str,
    kernel_args: list[str],
    disk_serial: str = "",
    reinstall: bool = False,
    trust: list[str] | None = None,
) -> list[DiskAction]:
    """New GPT, filesystems, slot A, boot loader, boot options, marker complete last.
    trust: the medium's update-kit certificates (names) for the new trust store."""
    specs = compute_layout(disk_size, manifest.slot_size)
    esp = partition_path(disk, ESP_NUMBER)
    storage = partition_path(disk, STORAGE_NUMBER)
    slot_a = partition_path(disk, SLOT_PARTITION_NUMBERS["A"])
    table = "; ".join(f"{s.number} {s.label} {_human(s.size)}" for s in specs)
    size = manifest.root_image.size
    return [
        DiskAction(
            "partition",
            disk,
            (
                _("Erasing {disk} and partitioning it") if reinstall else _("Partitioning {disk}")
            ).format(disk=disk),
            f"new GPT on {disk}: {table}",
            {"specs": specs},
            wipe=True,
        ),
        DiskAction(
            "format",
            esp,
            _("Creating the EFI system partition"),
            f"mkfs.fat -F 32 on {esp}",
            {"fstype": "vfat"},
            wipe=True,
        ),
        DiskAction(
            "marker",
            esp,
            _("Recording that the install has started"),
            f"install marker complete=false on {esp}",
            {"mode": "new", "slot": "A", "disk_serial": disk_serial},
        ),
        DiskAction(
            "format",
            storage,
            _("Creating the storage partition"),
            f"mkfs.ext4 on {storage}",
            {"fstype": "ext4"},
            wipe=True,
        ),
        DiskAction(
            "write-slot",
            slot_a,
            _("Writing {label} into slot {slot}").format(label=manifest.label(), slot="A"),
            f"{manifest.root_image.medium_path or manifest.root_image.path} ({_human(size)}) "
            f"to {slot_a}",
            {"slot": "A"},
            wipe=True,
            weight=size,
        ),
        DiskAction(
            "verify-slot",
            slot_a,
            _("Verifying slot {slot}").format(slot="A"),
            f"read back {slot_a} against the manifest SHA-256",
            {"slot": "A"},
            weight=size,
        ),
        DiskAction(
            "bootloader",
            disk,
            _("Installing the boot loader (BIOS and UEFI)"),
            f"GRUB in engine-bios and the MBR of {disk}; {_uefi_files(manifest)} and grub.cfg "
            f"on {esp}",
        ),
        _slot_options(esp, "A", kernel_args, keyboard),
        DiskAction(
            "bootenv",
            esp,
            _("Making slot {slot} the boot default").format(slot="A"),
            "boot environment: engine_active=A",
            {"active": "A", "trial": "", "tries": 0},
        ),
        *([trust_action(storage, trust)] if trust else []),
        _config(storage, manifest, kernel_args, keyboard, new=True),
        DiskAction(
            "marker",
            esp,
            _("Marking the install complete"),
            f"install marker complete=true on {esp}",
            {"mode": "complete"},
        ),
        _save_report(storage, "installation"),
    ]


def upgrade_actions(
    disk: str,
    manifest: Manifest,
    active_slot: str,
    keyboard: str,
    kernel_args: list[str],
    downgrade: bool = False,
    chain_from: dict[str, str] | None = None,
    trust: list[str] | None = None,
    disarm_trial: bool = False,
) -> list[DiskAction]:
    """New version into the inactive slot, verified, then the one-sector boot switch.

    disarm_trial: the inactive slot is armed for a trial boot (an earlier upgrade not yet
    booted): the trial is cancelled first, so a power cut while the slot is rewritten never
    leaves GRUB trying a half-written slot. trust: the medium's update-kit certificates.
    chain_from: the ESP's boot chain versions when the payload's chain is newer and replaces
    it (before the switch, so the old slot keeps booting whatever happens); None leaves the
    ESP's boot loader alone."""
    new = slot_other(active_slot)
    target = partition_path(disk, SLOT_PARTITION_NUMBERS[new])
    esp = partition_path(disk, ESP_NUMBER)
    storage = partition_path(disk, STORAGE_NUMBER)
    size = manifest.root_image.size
    what = "downgrade" if downgrade else "upgrade"
    chain = [] if chain_from is None else [bootchain_action(disk, manifest, chain_from)]
    disarm = DiskAction(
        "bootenv",
        esp,
        _("Cancelling the pending trial boot of slot {slot} before it is rewritten").format(
            slot=new
        ),
        f"boot environment: engine_active={active_slot} engine_trial= engine_tries=0",
        {"active": active_slot, "trial": "", "tries": 0},
    )
    return [
        *([disarm] if disarm_trial else []),
        DiskAction(
            "write-slot",
            target,
            _("Writing {label} into slot {slot}").format(label=manifest.label(), slot=new),
            f"{manifest.root_image.medium_path or manifest.root_image.path} ({_human(size)}) to "
            f"{target}; slot {active_slot} keeps booting until the switch",
            {"slot": new},
            wipe=True,
            weight=size,
        ),
        DiskAction(
            "verify-slot",
            target,
            _("Verifying slot {slot}").format(slot=new),
            f"read back {target} against the manifest SHA-256",
            {"slot": new},
            weight=size,
        ),
        _slot_options(esp, new, kernel_args, keyboard),
        DiskAction(
            "marker",
            esp,
            _("Recording Engine {version} in slot {slot}").format(
                version=manifest.version, slot=new
            ),
            f"install marker: slot table {new} = {manifest.version} build {manifest.build}",
            {"mode": "slot-table", "slot": new},
        ),
        *chain,
        *([trust_action(storage, trust)] if trust else []),
        DiskAction(
            "bootenv",
            esp,
            _("Switching to slot {new} for a trial boot (slot {old} stays the fallback)").format(
                new=new, old=active_slot
            ),
            f"boot environment: engine_active={active_slot} engine_trial={new} engine_tries=3",
            {"active": active_slot, "trial": new, "tries": 3},
        ),
        DiskAction(
            "marker",
            esp,
            _("Recording Engine {version} as the installed version").format(
                version=manifest.version
            ),
            f"install marker: version {manifest.version} build {manifest.build} slot {new}",
            {"mode": "switch", "slot": new},
        ),
        _config(storage, manifest, kernel_args, keyboard, new=False),
        _save_report(storage, what),
    ]


def repair_actions(
    disk: str,
    repairs: list[str],
    bios_boot: bool,
    active_slot: str,
    marker: dict[str, Any] | None,
) -> list[DiskAction]:
    """Restore what detection found damaged; nothing is wiped and storage is not touched."""
    esp = partition_path(disk, ESP_NUMBER)
    storage = partition_path(disk, STORAGE_NUMBER)
    actions = []
    if "gpt" in repairs:
        actions.append(
            DiskAction(
                "repair-table",
                disk,
                _("Repairing the partition table of {disk} from its good copy").format(disk=disk),
                f"sgdisk --move-second-header {disk} (rebuilds the damaged copy and the "
                "protective MBR from the good copy)",
            )
        )
    if bios_boot:
        actions.append(
            DiskAction(
                "bios-boot",
                disk,
                _("Restoring the BIOS boot code"),
                f"grub-bios-setup on {disk} (boot code in the MBR, core in engine-bios)",
            )
        )
    if "marker" in repairs:
        actions.append(
            DiskAction(
                "marker",
                esp,
                _("Rewriting the install marker from what the slots hold"),
                f"install marker on {esp}",
                {"mode": "rebuild", "marker": dict(marker or {})},
            )
        )
    if "bootenv" in repairs:
        actions.append(
            DiskAction(
                "bootenv",
                esp,
                _("Rewriting the boot environment (slot {slot} boots)").format(slot=active_slot),
                f"boot environment: engine_active={active_slot}",
                {"active": active_slot, "trial": "", "tries": 0, "create": True},
            )
        )
    actions.append(_save_report(storage, "repair"))
    return actions


def _check_specs(specs: list[PartitionSpec], disk_size: int) -> None:
    end = ALIGNMENT
    for spec in specs:
        if spec.start < end or spec.start % ALIGNMENT or spec.size <= 0:
            raise UserError(f"internal layout error at partition {spec.number}: report a bug")
        end = spec.start + spec.size
    if end > disk_size - ALIGNMENT // 2:
        raise UserError("internal layout error: partitions exceed the disk; report a bug")


def validate_actions(
    actions: list[DiskAction],
    kind: str,
    disk: str,
    disk_size: int,
    active_slot: str = "",
    running_engine: bool = False,
) -> None:
    """Refuse a plan that breaks a safety rule; runs before anything is written."""
    for action in actions:
        if action.kind not in KINDS:
            raise UserError(f"internal error: unknown disk action {action.kind}; report a bug")
        if not action.target.startswith(disk):
            raise UserError(f"internal error: action {action.kind} leaves {disk}; report a bug")
        if running_engine and action.kind not in RUNNING_ENGINE_KINDS:
            raise UserError(
                f"internal error: an update of the running Engine would {action.kind}; "
                "report a bug"
            )
    if running_engine and kind not in ("upgrade", "downgrade"):
        raise UserError(f"internal error: an update of the running Engine cannot {kind}")
    if kind in ("install", "reinstall"):
        if actions[0].kind != "partition":
            raise UserError("internal error: an install must start with partitioning")
        _check_specs(actions[0].params["specs"], disk_size)
        markers = [a for a in actions if a.kind == "marker"]
        if markers[-1].params.get("mode") != "complete" or actions[-2] is not markers[-1]:
            raise UserError("internal error: the install marker must be written last")
        labels = [s.label for s in actions[0].params["specs"]]
        if LABEL_ESP not in labels or LABEL_STORAGE not in labels:
            raise UserError("internal error: layout lacks ESP or storage; report a bug")
        return
    if any(a.wipe or a.kind in ("partition", "format") for a in actions if a.kind != "write-slot"):
        raise UserError(f"internal error: a {kind} never repartitions or formats; report a bug")
    if kind == "repair":
        return
    # Upgrade and downgrade: only the inactive slot is written, switch after verify.
    active = partition_path(disk, SLOT_PARTITION_NUMBERS[active_slot])
    verified = False
    for action in actions:
        if action.target == active:
            raise UserError(f"internal error: {kind} would write {action.target}; report a bug")
        if action.kind == "verify-slot":
            verified = True
        if action.kind == "bootenv" and action.params.get("trial") and not verified:
            raise UserError("internal error: boot switch before the slot is verified")
        if action.kind == "bootenv" and not action.params.get("trial") and verified:
            raise UserError("internal error: a trial is cancelled only before the slot write")


def step_lines(actions: list[DiskAction]) -> list[str]:
    """ "Step i of N: title" for every action: the words the summary, the dry run, the
    progress screen and the log all use."""
    return [step_line(i, len(actions), a) for i, a in enumerate(actions, 1)]


def step_line(index: int, total: int, action: DiskAction) -> str:
    line = _("Step {index} of {total}: {title}")
    return line.format(index=index, total=total, title=action.title)


def format_actions(actions: list[DiskAction]) -> str:
    """The dry run's listing: each step line, its technical detail and what it destroys."""
    lines = []
    for index, action in enumerate(actions, 1):
        tag = " [erases]" if action.wipe else " [keeps]" if action.preserve else ""
        lines.append(step_line(index, len(actions), action) + tag)
        if action.detail:
            lines.append(f"    {action.detail}")
    return "\n".join(lines)
