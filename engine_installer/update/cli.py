"""engine-update: install an Engine update kit into the running Engine (docs/update-kit.md).

    engine-update [--disk DEV] stage KIT        copy a signed kit onto storage: Pending
    engine-update [--disk DEV] apply [KIT]      check and install it: Signalled, then
                                                Installed (Reboot Required), or Failed
    engine-update [--disk DEV] status [--json]  the update status, reconciled with the disk
    engine-update [--disk DEV] cancel           withdraw a staged or failed update

--disk names the Engine disk when it is not the one this system booted from (tests, a
technician's rescue shell).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine_installer.base.errors import cli_entry
from engine_installer.unattended import TextProgress, result_lines
from engine_installer.update import kit as kits
from engine_installer.update.status import BLANK, UpdateStatus, explain


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="engine-update", description=__doc__.splitlines()[0])
    disk_help = "the Engine disk (default: the disk this system booted from)"
    parser.add_argument("--disk", metavar="DEV", help=disk_help)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    stage = sub.add_parser("stage", help="copy a signed kit onto the storage partition")
    stage.add_argument("kit", type=Path, metavar="KIT", help="the Engine installer ISO")
    apply = sub.add_parser("apply", help="check the kit and install it into the inactive slot")
    apply.add_argument("kit", type=Path, nargs="?", metavar="KIT",
                       help="the kit (default: the staged one)")  # fmt: skip
    apply.add_argument("--lab-override", action="store_true",
                       help="install although the hardware check fails (lab machines "
                       "only)")  # fmt: skip
    status = sub.add_parser("status", help="the update status in the guide's words")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    sub.add_parser("cancel", help="withdraw a staged or failed update")
    for command in sub.choices.values():  # --disk after the command name too
        command.add_argument("--disk", metavar="DEV", default=argparse.SUPPRESS, help=disk_help)
    return parser


def word(status: UpdateStatus) -> str:
    return status.status if status.status != BLANK else "(blank)"


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = TextProgress()
    if args.command == "stage":
        staged = kits.stage(args.disk, args.kit, out)
        out.say(f"Update status: {word(staged)}")
        out.say(explain(staged, None))
        return 0
    if args.command == "apply":
        installed, result = kits.apply(args.disk, args.kit, out, lab_override=args.lab_override)
        for line in result_lines(result):
            out.say(line)
        out.say(f"Update status: {word(installed)}")
        return 0
    if args.command == "cancel":
        cancelled = kits.cancel(args.disk)
        out.say(f"Update status: {word(cancelled)} (the update was withdrawn)")
        return 0
    status, install, running, note = kits.current_status(args.disk)
    text = explain(status, install, running)
    if args.json:
        data = status.to_json()
        data.update(explanation=text, in_progress=running)
        print(json.dumps(data, indent=2))
        return 0
    out.say(f"Update status: {word(status)}")
    out.say(text)
    kit = status.kit
    if kit is not None and kit.version:
        signer = f", signed by {kit.signer}" if kit.signer else ""
        what = "Last kit" if status.status == BLANK else "Kit"
        out.say(f"{what}: Engine {kit.version} (build {kit.build}) from {kit.file}{signer}")
    if note:
        print(f"note: {note}", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover - engine-update is the entry point
    sys.exit(main())
