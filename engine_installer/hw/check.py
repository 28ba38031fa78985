"""Check a machine snapshot against its hardware profile: pass / warn / fail per requirement.

The welcome screen shows the report: a fail blocks installing with the reason (labs may
override, logged), a warn lets the install go on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine_installer.base.i18n import _
from engine_installer.hw.match import match_profile
from engine_installer.hw.profiles import load_profiles
from engine_installer.hw.schema import Profile
from engine_installer.machine.snapshot import DiskInfo, MachineSnapshot
from engine_installer.ondisk.payload import Manifest

PASS, WARN, FAIL = "pass", "warn", "fail"
_RANK = {PASS: 0, WARN: 1, FAIL: 2}
# psutil reports usable memory: firmware and the integrated GPU keep a few hundred MiB of the
# installed amount, so an 8 GiB laptop shows about 7.6 GiB. Accept 10 % below the figure.
RAM_TOLERANCE = 0.9
# Controllers behind which the installer cannot (or should not) reach the disk.
HIDING_KINDS = ("vmd", "raid")
NOT_INTERNAL_BUSES = ("usb", "loop", "mmc", "sdio")
NOT_INTERNAL_PREFIXES = ("/dev/loop", "/dev/zram", "/dev/ram", "/dev/sr", "/dev/fd", "/dev/md")


@dataclass
class CheckItem:
    name: str
    status: str  # "pass" | "warn" | "fail"
    message: str


@dataclass
class HwReport:
    profile_name: str  # "" for unknown model
    model: str
    verdict: str  # worst status
    items: list[CheckItem]
    kernel_args: list[str]
    # Extensions (defaulted): the profile id, and known issues a technician should read.
    profile_id: str = ""
    known_issues: list[str] = field(default_factory=list)
    lab: bool = False
    secure_boot: str = ""  # on | off | unsupported, as probed ("" = not recorded)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def blocking(self) -> list[CheckItem]:
        return [i for i in self.items if i.status == FAIL]


def generic_profile() -> Profile:
    """Requirements for a model without a profile: what Engine needs on any Intel laptop."""
    return Profile(
        id="",
        path=Path("(generic)"),
        name="",
        released=0,
        lab=False,
        notes="",
        match={},
        firmware_modes=["uefi", "bios"],
        setup_key="F1, F2 or F10",
        uefi_setting="",
        vt_x="require",
        ept="require",
        vt_d="require",
        vt_x_setting="Intel Virtualization Technology (VT-x)",
        vt_d_setting="Intel VT-d (Virtualization Technology for Directed I/O)",
        storage_controllers=["ahci", "nvme"],
        storage_setting="SATA / storage controller mode: AHCI (not RAID, RST or VMD)",
        secure_boot_setting="Secure Boot (under Boot or Security): Disabled",
        min_disk_gb=128,
        min_ram_gib=8,
        recommended_ram_gib=16,
    )


def describe_model(snapshot: MachineSnapshot) -> str:
    dmi = {k: v.strip() for k, v in snapshot.dmi.items()}
    vendor = dmi.get("sys_vendor", "")
    name = dmi.get("product_name", "")
    version = dmi.get("product_version", "")
    # Lenovo puts the machine type in product_name and the model in product_version.
    if version.lower().startswith("thinkpad") or vendor.upper() == "LENOVO":
        text = f"{vendor} {version} ({name})" if version else f"{vendor} {name}"
    elif name.upper().startswith(vendor.upper()):  # "HP" + "HP EliteBook 840 G3"
        text = name
    else:
        text = f"{vendor} {name}"
    return " ".join(text.split()) or "unknown machine (no DMI information)"


def is_internal(disk: DiskInfo) -> bool:
    return not (
        disk.removable
        or disk.is_boot_medium
        or disk.read_only
        or disk.bus in NOT_INTERNAL_BUSES
        or disk.path.startswith(NOT_INTERNAL_PREFIXES)
    )


def _setup(profile: Profile) -> str:
    if profile.setup_key:
        return _("the firmware setup ({key} at power-on)").format(key=profile.setup_key)
    return _("the firmware setup")


def _in_setup(profile: Profile, setting: str) -> str:
    return _("set '{setting}' in {setup}").format(setting=setting, setup=_setup(profile))


def _feature(
    name: str, level: str, present: bool, ok: str, missing: str, lab: bool = False
) -> CheckItem:
    if present:
        return CheckItem(name, PASS, ok)
    if level == "ignore":
        label = {"vt-x": "VT-x", "ept": "EPT", "vt-d": "VT-d"}.get(name, name)
        text = (
            _("{feature} is not available; not required by this lab profile")
            if lab
            else _("{feature} is not available; not required by this profile")
        )
        return CheckItem(name, PASS, text.format(feature=label))
    return CheckItem(name, FAIL if level == "require" else WARN, missing)


def _cpu_items(snap: MachineSnapshot, p: Profile) -> list[CheckItem]:
    flags = set(snap.cpu_flags)
    items = []
    if "vmx" not in flags and "svm" in flags and p.vt_x != "ignore":
        items.append(
            CheckItem(
                "vt-x",
                WARN,
                _(
                    "AMD CPU (AMD-V) found: Engine's profiles cover Intel VT-x laptops only; "
                    "check AMD-V and the IOMMU are enabled in the firmware setup"
                ),
            )
        )
        return items
    items.append(
        _feature(
            "vt-x",
            p.vt_x,
            "vmx" in flags,
            _("Intel VT-x is enabled"),
            _(
                "VT-x is disabled: enable Intel Virtualization Technology in {setup}, "
                "'{setting}', then power off and on"
            ).format(setup=_setup(p), setting=p.vt_x_setting),
            p.lab,
        )
    )
    if "vmx" not in flags and p.ept != "ignore":
        items.append(
            CheckItem(
                "ept",
                WARN,
                _(
                    "EPT cannot be checked while VT-x is disabled: run hw-check again after "
                    "enabling VT-x"
                ),
            )
        )
    else:
        items.append(
            _feature(
                "ept",
                p.ept,
                "ept" in flags,
                _("Intel EPT (second-level address translation) is available"),
                _(
                    "the CPU has no EPT: Engine needs a CPU with Intel VT-x and EPT "
                    "(Core i3/i5/i7 from 2010 on); this processor cannot run it"
                ),
                p.lab,
            )
        )
    items.append(
        _feature(
            "vt-d",
            p.vt_d,
            snap.acpi_dmar,
            _("Intel VT-d is enabled (ACPI DMAR table present)"),
            _(
                "VT-d is disabled or absent (no ACPI DMAR table): enable Intel VT-d in "
                "{setup}, '{setting}'; some Core i3 CPUs have no VT-d"
            ).format(setup=_setup(p), setting=p.vt_d_setting),
            p.lab,
        )
    )
    return items


def _memory_item(snap: MachineSnapshot, p: Profile) -> CheckItem:
    gib = snap.memory_bytes / 2**30
    have = f"{gib:.1f}"
    if gib < p.min_ram_gib * RAM_TOLERANCE:
        return CheckItem(
            "memory",
            FAIL,
            _(
                "only {have} GiB of memory: Engine needs at least {need:g} GiB on this machine; "
                "fit more memory"
            ).format(have=have, need=p.min_ram_gib),
        )
    if gib < p.recommended_ram_gib * RAM_TOLERANCE:
        return CheckItem(
            "memory",
            WARN,
            _(
                "{have} GiB of memory: enough to install, but {want:g} GiB is recommended "
                "for running VMs; fit more memory if you can"
            ).format(have=have, want=p.recommended_ram_gib),
        )
    return CheckItem(
        "memory",
        PASS,
        _("{have} GiB of memory (at least {need:g} GiB needed)").format(
            have=have, need=p.min_ram_gib
        ),
    )


def _storage_items(snap: MachineSnapshot, p: Profile) -> list[CheckItem]:
    disks = [d for d in snap.disks if is_internal(d)]
    fix = _in_setup(p, p.storage_setting)
    vmd = [c for c in snap.storage_controllers if c.kind == "vmd"]
    raid = [c for c in snap.storage_controllers if c.kind == "raid"]
    remapped = sum(c.remapped_nvme for c in snap.storage_controllers)
    behind = [d for d in disks if d.controller in ("vmd", "megaraid_sas")]
    items = []
    if behind:
        names = ", ".join(d.path for d in behind)
        items.append(
            CheckItem(
                "storage",
                FAIL,
                _(
                    "{names} sits behind Intel VMD / RAID; Engine needs its disk on AHCI or "
                    "plain NVMe: {fix}"
                ).format(names=names, fix=fix),
            )
        )
    elif remapped:
        items.append(
            CheckItem(
                "storage",
                FAIL,
                _(
                    "Intel RST RAID mode hides {count} NVMe disk(s) behind the SATA controller, "
                    "so Linux cannot see them: {fix}"
                ).format(count=remapped, fix=fix),
            )
        )
    elif not disks and (vmd or raid):
        what = "Intel VMD" if vmd else "RAID (Intel RST)"
        items.append(
            CheckItem(
                "storage",
                FAIL,
                _(
                    "no internal disk is visible because the storage controller is in {mode} "
                    "mode; with VMD or RST RAID on, Linux sees no disk: {fix}"
                ).format(mode=what, fix=fix),
            )
        )
    elif not disks:
        items.append(
            CheckItem(
                "storage",
                FAIL,
                _(
                    "no internal disk found: fit a disk, or check it is enabled in the firmware "
                    "setup and that the storage mode is AHCI ({fix})"
                ).format(fix=fix),
            )
        )
    elif raid:
        items.append(
            CheckItem(
                "storage",
                WARN,
                _(
                    "the SATA controller is in RAID mode; Linux still sees the disks but Engine "
                    "expects AHCI: {fix}"
                ).format(fix=fix),
            )
        )
    else:
        odd = [d for d in disks if d.controller and d.controller not in p.storage_controllers]
        if odd:
            d = odd[0]
            items.append(
                CheckItem(
                    "storage",
                    WARN,
                    _(
                        "{disk} is on a '{controller}' controller, not the expected "
                        "{expected}: {fix}"
                    ).format(
                        disk=d.path,
                        controller=d.controller,
                        expected=" / ".join(p.storage_controllers),
                        fix=fix,
                    ),
                )
            )
        else:
            desc = ", ".join(
                f"{d.path} ({d.controller})" if d.controller else d.path for d in disks
            )
            items.append(
                CheckItem(
                    "storage", PASS, _("internal disk(s) visible: {disks}").format(disks=desc)
                )
            )
    if disks:
        best = max(disks, key=lambda d: d.size)
        gb = best.size / 1e9
        if gb < p.min_disk_gb:
            items.append(
                CheckItem(
                    "disk",
                    FAIL,
                    _(
                        "the largest internal disk, {disk}, is smaller than the {need:g} GB "
                        "Engine needs: fit a larger disk"
                    ).format(disk=best.describe(), need=p.min_disk_gb),
                )
            )
        else:
            items.append(
                CheckItem(
                    "disk",
                    PASS,
                    _("{disk} (at least {need:g} GB needed)").format(
                        disk=best.describe(), need=p.min_disk_gb
                    ),
                )
            )
    return items


def _firmware_item(snap: MachineSnapshot, p: Profile) -> CheckItem:
    """The first of the profile's modes is the preferred one; others work but warn."""
    mode = "UEFI" if snap.firmware == "uefi" else "legacy BIOS"
    preferred = "UEFI" if p.firmware_modes[0] == "uefi" else "legacy BIOS"
    how = ""
    if p.uefi_setting:
        how = _(": {fix} and boot the medium again").format(fix=_in_setup(p, p.uefi_setting))
    if snap.firmware == p.firmware_modes[0] or not p.id:  # generic: either mode is fine
        return CheckItem("firmware", PASS, _("booted in {mode} mode").format(mode=mode))
    if snap.firmware in p.firmware_modes:
        return CheckItem(
            "firmware",
            WARN,
            _("booted in {mode} mode; Engine prefers {preferred} mode on this model{how}").format(
                mode=mode, preferred=preferred, how=how
            ),
        )
    return CheckItem(
        "firmware",
        WARN,
        _(
            "booted in {mode} mode, but this model is qualified for {preferred} mode only{how}"
        ).format(mode=mode, preferred=preferred, how=how),
    )


def _secure_boot_item(
    snap: MachineSnapshot, p: Profile, media: Manifest | None
) -> CheckItem | None:
    """Secure Boot as the firmware reports it, against what the medium's Engine can boot with
    (its manifest's secure_boot; not judged when the medium or that field is not known)."""
    engine = media.label() if media is not None else ""
    engine_secure_boot = media.secure_boot if media is not None else None
    state = snap.secure_boot or ("unsupported" if snap.firmware == "bios" else "")
    if not state:
        return None  # a recorded machine from before Secure Boot was probed
    if state == "unsupported":
        return CheckItem("secure-boot", PASS, _("Secure Boot: unsupported (legacy BIOS boot)"))
    if state == "off":
        if engine and engine_secure_boot:
            text = _("Secure Boot is off; {engine} also boots with it on").format(engine=engine)
        else:
            text = _("Secure Boot is off")
        return CheckItem("secure-boot", PASS, text)
    if engine_secure_boot is False:
        setting = p.secure_boot_setting or generic_profile().secure_boot_setting
        return CheckItem(
            "secure-boot",
            FAIL,
            _(
                "Secure Boot is on, and {engine} cannot boot with it: {fix}, then boot the "
                "medium again"
            ).format(engine=engine or _("the Engine on this medium"), fix=_in_setup(p, setting)),
        )
    if engine_secure_boot:
        return CheckItem(
            "secure-boot",
            PASS,
            _("Secure Boot is on; {engine} boots with it").format(engine=engine),
        )
    return CheckItem("secure-boot", PASS, _("Secure Boot is on"))


def worst(items: list[CheckItem]) -> str:
    return max((i.status for i in items), key=_RANK.__getitem__, default=PASS)


def check_with_profile(
    snapshot: MachineSnapshot, profile: Profile | None, media: Manifest | None = None
) -> HwReport:
    """media: the Engine on the medium, whose manifest says whether it boots with Secure Boot
    on (None: not known; Secure Boot is then only reported)."""
    model = describe_model(snapshot)
    p = profile or generic_profile()
    if profile is None:
        first = CheckItem(
            "model",
            WARN,
            _(
                "unknown model ({model}): generic checks only; record it with "
                "'engine-installer hw-capture' and add a profile"
            ).format(model=model),
        )
    elif profile.lab:
        first = CheckItem(
            "model",
            PASS,
            _(
                "recognised as {name} (profile {id}): a lab/test profile with relaxed "
                "requirements, not a supported laptop"
            ).format(name=profile.name, id=profile.id),
        )
    else:
        first = CheckItem(
            "model",
            PASS,
            _("recognised as {name} (profile {id})").format(name=profile.name, id=profile.id),
        )
    items = [first, _firmware_item(snapshot, p), *_cpu_items(snapshot, p)]
    items.append(_memory_item(snapshot, p))
    items.extend(_storage_items(snapshot, p))
    secure_boot = _secure_boot_item(snapshot, p, media)
    items += [secure_boot] if secure_boot else []
    kernel_args = [k.arg for k in p.kernel_args]
    if p.kernel_args:
        reasons = "; ".join(f"{k.arg} ({k.reason})" for k in p.kernel_args)
        items.append(
            CheckItem(
                "kernel-args",
                PASS,
                _("added to Engine's command line: {args}").format(args=reasons),
            )
        )
    issues = [f"{i.issue} Fix: {i.fix}" if i.fix else i.issue for i in p.known_issues]
    return HwReport(
        profile_name=profile.name if profile else "",
        model=model,
        verdict=worst(items),
        items=items,
        kernel_args=kernel_args,
        profile_id=profile.id if profile else "",
        known_issues=issues,
        lab=bool(profile and profile.lab),
        secure_boot=snapshot.secure_boot or ("unsupported" if snapshot.firmware == "bios" else ""),
    )


def check_machine(
    snapshot: MachineSnapshot, profiles_dir: Path | None = None, media: Manifest | None = None
) -> HwReport:
    """Find the machine's profile in profiles_dir (default: see default_profiles_dir) and check
    it, and Secure Boot against the medium's Engine when given (see check_with_profile)."""
    profiles = load_profiles(profiles_dir)
    profile = match_profile(snapshot, profiles)
    return check_with_profile(snapshot, profile, media)


def merge_kernel_args(report: HwReport, requested: list[str]) -> list[str]:
    """Plan.kernel_args for the installed Engine: the profile's quirks, then what the answer
    file or technician asked for (later arguments win on the kernel command line), no repeats."""
    merged: list[str] = []
    for arg in [*report.kernel_args, *requested]:
        if arg not in merged:
            merged.append(arg)
    return merged
