"""engine-installer hw-check / hw-capture."""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

from engine_installer.base.errors import UserError
from engine_installer.hw.capture import capture, draft_id
from engine_installer.hw.check import FAIL, HwReport, check_machine
from engine_installer.machine.probe import probe_machine
from engine_installer.machine.snapshot import MachineSnapshot, load_snapshot
from engine_installer.ondisk.payload import Manifest


def machine_snapshot(args: argparse.Namespace) -> MachineSnapshot:
    """The recorded machine given with --profile, else a live probe."""
    profile = getattr(args, "profile", None)
    return load_snapshot(profile) if profile else probe_machine()


def format_report(report: HwReport) -> str:
    head = f"{report.model}: {report.verdict.upper()}"
    if report.profile_name:
        head += f" (profile {report.profile_id})"
    lines = [head]
    lines += [f"  {i.status.upper():4}  {i.name:11} {i.message}" for i in report.items]
    if report.known_issues:
        lines.append("Known issues on this model:")
        lines += [f"  - {issue}" for issue in report.known_issues]
    return "\n".join(lines)


def run_hw_check(args: argparse.Namespace, media: Manifest | None = None) -> int:
    """media: the medium's Engine, for the Secure Boot check (None: only report it)."""
    report = check_machine(machine_snapshot(args), media=media)
    if getattr(args, "json", False):
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(format_report(report))
    return 1 if report.verdict == FAIL else 0


def run_hw_capture(args: argparse.Namespace) -> int:
    snap = machine_snapshot(args)
    out = getattr(args, "out", None) or Path(f"hw-profile-{draft_id(snap)}.toml")
    if out.suffix != ".toml":
        raise UserError(f"--out {out} must end in .toml: the profile draft is a TOML file")
    if out.exists():
        raise UserError(f"{out} already exists: remove it or choose another --out")
    if not out.parent.is_dir():
        raise UserError(f"directory {out.parent} does not exist: create it or fix --out")
    draft, snapshot = capture(snap, out, datetime.date.today().year)
    print(f"profile draft: {draft}")
    print(f"machine snapshot: {snapshot}")
    print(f"replay with: engine-installer --profile {snapshot} hw-check")
    return 0


def run_hw_command(args: argparse.Namespace, media: Manifest | None = None) -> int:
    if args.command == "hw-check":
        return run_hw_check(args, media)
    if args.command == "hw-capture":
        return run_hw_capture(args)
    raise UserError(f"unknown hardware command {args.command!r}: use hw-check or hw-capture")
