"""engine-installer: the text UI by default; unattended with --answers; sub-commands for tools."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine_installer import __version__
from engine_installer.base.cli_help import ArgumentParser
from engine_installer.base.errors import UserError, cli_entry
from engine_installer.base.i18n import _
from engine_installer.ondisk.payload import Manifest


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="engine-installer",
        description=_("Install or upgrade Engine from this boot medium."),
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {__version__}",
        help=_("show program's version number and exit"),
    )
    parser.add_argument(
        "--answers", type=Path, metavar="FILE", help=_("run unattended from a TOML answer file")
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help=_(
            "touch nothing: print the disk actions (with --answers) or run the UI against a "
            "recorded machine (with --profile)"
        ),
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="FILE",
        help=_("a recorded machine snapshot (JSON) to use instead of probing"),
    )
    parser.add_argument(
        "--source",
        type=Path,
        metavar="PATH",
        help=_("Engine payload directory or ISO (default: the boot medium)"),
    )
    parser.add_argument(
        "--ascii", action="store_true", help=_("plain ASCII drawing for serial terminals")
    )
    sub = parser.add_subparsers(dest="command", metavar=_("COMMAND"))
    detect = sub.add_parser("detect", help=_("list Engine installs on every disk"))
    detect.add_argument("--json", action="store_true", help=_("machine-readable output"))
    detect.add_argument(
        "--disk", action="append", default=[], help=_("look only at this disk (repeatable)")
    )
    sub.add_parser("keyboards", help=_("list the console keyboard layouts"))
    hw_check = sub.add_parser("hw-check", help=_("check this machine against its hardware profile"))
    hw_check.add_argument("--json", action="store_true", help=_("machine-readable output"))
    hw_capture = sub.add_parser("hw-capture", help=_("record this machine as a profile draft"))
    hw_capture.add_argument("--out", type=Path, help=_("where to write the profile draft"))
    for hw in (hw_check, hw_capture):  # also accept --profile after the sub-command
        hw.add_argument("--profile", type=Path, metavar="FILE", default=argparse.SUPPRESS)
    hw_check.add_argument(
        "--source",
        type=Path,
        metavar="PATH",
        default=argparse.SUPPRESS,
        help=_("the Engine payload or ISO to check Secure Boot against (default: the boot medium)"),
    )
    return parser


def hw_check_media(args: argparse.Namespace) -> Manifest | None:
    """The Engine hw-check weighs Secure Boot against: --source (payload or ISO), else the
    boot medium's when running from one; None when there is none."""
    from engine_installer.unattended import BOOT_MEDIUM, source_medium

    source = getattr(args, "source", None)
    if source is None and not (BOOT_MEDIUM / "engine").is_dir():
        return None
    return source_medium(source).manifest


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "keyboards":
        from engine_installer.machine.keyboards import available_layouts

        print("\n".join(available_layouts()))
        return 0
    if args.command == "detect":
        from engine_installer.detect_cli import run_detect

        return run_detect(args)
    if args.command in ("hw-check", "hw-capture"):
        from engine_installer.hw.cli import run_hw_command

        if args.command == "hw-check":
            return run_hw_command(args, hw_check_media(args))
        return run_hw_command(args)
    if args.answers:
        from engine_installer.unattended import run_unattended

        return run_unattended(args)
    if args.dry_run and not args.profile:
        raise UserError(_("--dry-run needs --answers FILE or --profile FILE"))
    from engine_installer.tui.app import run_tui

    return run_tui(args)
