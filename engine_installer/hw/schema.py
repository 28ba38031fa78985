"""Hardware profile schema: one TOML file per laptop model, validated key by key.

Hand-written rather than a schema library: the project has no JSON-schema dependency, the
format is small, and every error must name the file and the dotted key with a fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine_installer.base.errors import UserError

SCHEMA_VERSION = 1
FIRMWARE_MODES = ("uefi", "bios")
LEVELS = ("require", "recommend", "ignore")  # how a missing CPU/platform feature is reported
CONFIDENCE = ("documented", "reported", "precaution")
# DMI attributes under /sys/class/dmi/id a profile may match on, plus two probe facts.
MATCH_DMI_KEYS = (
    "sys_vendor",
    "product_name",
    "product_version",
    "product_family",
    "board_vendor",
    "board_name",
    "bios_vendor",
)
MATCH_KEYS = (*MATCH_DMI_KEYS, "cpu_model", "firmware")
SAMPLE_KEYS = (*MATCH_DMI_KEYS, "cpu_model")
REGEX_PREFIX = "re:"  # a pattern starting with re: is a Python regex (full match); else a glob


@dataclass(frozen=True)
class KernelArg:
    arg: str
    reason: str
    confidence: str  # documented | reported | precaution


@dataclass(frozen=True)
class KnownIssue:
    issue: str
    fix: str = ""


@dataclass
class Profile:
    id: str  # the file stem, e.g. dell-latitude-7490
    path: Path
    name: str  # "Dell Latitude 7490"
    released: int
    lab: bool
    notes: str
    match: dict[str, list[str]]
    firmware_modes: list[str]
    setup_key: str
    uefi_setting: str
    vt_x: str
    ept: str
    vt_d: str
    vt_x_setting: str
    vt_d_setting: str
    storage_controllers: list[str]
    storage_setting: str
    min_disk_gb: float
    min_ram_gib: float
    recommended_ram_gib: float
    kernel_args: list[KernelArg] = field(default_factory=list)
    known_issues: list[KnownIssue] = field(default_factory=list)
    # What a real unit reports (DMI strings, CPU model): documents the match patterns and
    # lets tests build a machine snapshot of this model.
    sample: dict[str, str] = field(default_factory=dict)
    # Where Secure Boot is switched off in the firmware setup ("" = not known for this model).
    secure_boot_setting: str = ""


_MISSING = object()


class _Table:
    """Reads keys out of one TOML table; whatever is left over at the end is an unknown key."""

    def __init__(self, data: Any, file: Path, prefix: str) -> None:
        self.file = file
        self.prefix = prefix
        if not isinstance(data, dict):
            self.fail(prefix.rstrip(".") or "(top)", "must be a table", "write it as [section]")
        self.data = dict(data)

    def fail(self, key: str, problem: str, fix: str) -> None:
        raise UserError(f"hw profile {self.file}: key '{key}' {problem}: {fix}")

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = _MISSING) -> Any:
        if name not in self.data:
            if default is _MISSING:
                self.fail(self.key(name), "is missing", "add it (see docs/hw-profiles.md)")
            return default
        value = self.data.pop(name)
        # bool is an int in Python; never accept true/false where a number is meant.
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _tuple(kind)):
            names = " or ".join(k.__name__ for k in _tuple(kind))
            self.fail(self.key(name), f"has {type(value).__name__} {value!r}", f"use a {names}")
        return value

    def text(self, name: str, default: Any = _MISSING) -> str:
        value = self.get(name, str, default)
        if default is _MISSING and not value.strip():
            self.fail(self.key(name), "is empty", "write a value")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: Any = _MISSING) -> str:
        value = self.get(name, str, default)
        if value not in choices:
            self.fail(self.key(name), f"is {value!r}", f"use one of {', '.join(choices)}")
        return value

    def str_list(self, name: str, default: Any = _MISSING) -> list[str]:
        value = self.get(name, (str, list), default)
        items = [value] if isinstance(value, str) else list(value)
        for item in items:
            if not isinstance(item, str) or not item:
                self.fail(self.key(name), f"has item {item!r}", "use non-empty strings")
        return items

    def number(self, name: str, low: float, default: Any = _MISSING) -> float:
        value = self.get(name, (int, float), default)
        if value < low:
            self.fail(self.key(name), f"is {value}", f"use a number of at least {low}")
        return value

    def table(self, name: str, required: bool = True) -> _Table:
        if name not in self.data and not required:
            return _Table({}, self.file, self.key(name) + ".")
        return _Table(self.get(name, dict), self.file, self.key(name) + ".")

    def tables(self, name: str) -> list[_Table]:
        value = self.get(name, list, [])
        return [_Table(v, self.file, f"{self.key(name)}[{i}].") for i, v in enumerate(value)]

    def done(self) -> None:
        if self.data:
            extra = sorted(self.data)[0]
            self.fail(self.key(extra), "is unknown", "remove it or fix its spelling")


def _tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _check_pattern(table: _Table, key: str, pattern: str) -> None:
    if pattern.startswith(REGEX_PREFIX):
        try:
            re.compile(pattern[len(REGEX_PREFIX) :])
        except re.error as err:
            table.fail(table.key(key), f"has a bad regex {pattern!r} ({err})", "fix the regex")


def parse_profile(data: dict[str, Any], path: Path) -> Profile:
    """Validate one profile's TOML data; raises UserError naming the file and key."""
    top = _Table(data, path, "")
    version = top.get("schema", int)
    if version != SCHEMA_VERSION:
        top.fail("schema", f"is {version}", f"this installer reads schema {SCHEMA_VERSION}")
    name = top.text("name")
    released = int(top.number("released", 1990))
    lab = top.get("lab", bool, False)
    notes = top.text("notes", "")

    m = top.table("match")
    match: dict[str, list[str]] = {}
    for key in MATCH_KEYS:
        if key in m.data:
            match[key] = m.str_list(key)
            for pattern in match[key]:
                _check_pattern(m, key, pattern)
    if "firmware" in match:
        for mode in match["firmware"]:
            if mode not in FIRMWARE_MODES:
                m.fail("match.firmware", f"is {mode!r}", f"use one of {', '.join(FIRMWARE_MODES)}")
    m.done()
    if not any(k in match for k in ("product_name", "product_version", "product_family")):
        top.fail(
            "match",
            "names no product",
            "add product_name, product_version or product_family so only this model matches",
        )

    fw = top.table("firmware")
    modes = fw.str_list("modes")
    for mode in modes:
        if mode not in FIRMWARE_MODES:
            fw.fail("firmware.modes", f"has {mode!r}", f"use {' and/or '.join(FIRMWARE_MODES)}")
    setup_key = fw.text("setup_key", "")
    uefi_setting = fw.text("uefi_setting", "")
    secure_boot_setting = fw.text("secure_boot_setting", "")
    fw.done()

    cpu = top.table("cpu")
    vt_x = cpu.choice("vt_x", LEVELS)
    ept = cpu.choice("ept", LEVELS)
    vt_d = cpu.choice("vt_d", LEVELS)
    vt_x_setting = cpu.text("vt_x_setting")
    vt_d_setting = cpu.text("vt_d_setting")
    cpu.done()

    st = top.table("storage")
    controllers = st.str_list("controllers")
    storage_setting = st.text("mode_setting")
    min_disk_gb = float(st.number("min_disk_gb", 0.1))
    st.done()

    mem = top.table("memory")
    min_ram = mem.number("min_gib", 0.25)
    rec_ram = mem.number("recommended_gib", min_ram, min_ram)
    mem.done()

    kernel_args = []
    for t in top.tables("kernel_args"):
        arg = t.text("arg")
        if " " in arg.strip():
            t.fail(t.key("arg"), f"is {arg!r}", "put one argument per [[kernel_args]] entry")
        reason, confidence = t.text("reason"), t.choice("confidence", CONFIDENCE)
        kernel_args.append(KernelArg(arg.strip(), reason, confidence))
        t.done()
    sample_table = top.table("sample", required=False)
    sample = {k: sample_table.text(k) for k in SAMPLE_KEYS if k in sample_table.data}
    sample_table.done()
    issues = []
    for t in top.tables("known_issues"):
        issues.append(KnownIssue(t.text("issue"), t.text("fix", "")))
        t.done()
    top.done()
    return Profile(
        id=path.stem,
        path=path,
        name=name,
        released=released,
        lab=lab,
        notes=notes,
        match=match,
        firmware_modes=modes,
        setup_key=setup_key,
        uefi_setting=uefi_setting,
        vt_x=vt_x,
        ept=ept,
        vt_d=vt_d,
        vt_x_setting=vt_x_setting,
        vt_d_setting=vt_d_setting,
        storage_controllers=controllers,
        storage_setting=storage_setting,
        min_disk_gb=min_disk_gb,
        min_ram_gib=float(min_ram),
        recommended_ram_gib=float(rec_ram),
        kernel_args=kernel_args,
        known_issues=issues,
        sample=sample,
        secure_boot_setting=secure_boot_setting,
    )
