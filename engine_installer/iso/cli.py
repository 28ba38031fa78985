"""engine-iso: sample payloads, the installer ISO, and checks of ISOs and media.

Each sub-command lives in its own module with `add_arguments(parser)` and `run(args) -> int`;
this file only routes, so the modules can grow independently.
"""

from __future__ import annotations

import argparse
import importlib

from engine_installer.base.cli_help import ArgumentParser
from engine_installer.base.errors import cli_entry
from engine_installer.base.i18n import N_, _

SUBCOMMANDS = {
    "sample-payload": ("engine_installer.iso.sample_payload", N_("build a sample Engine payload")),
    "build": ("engine_installer.iso.builder", N_("build the installer ISO from a payload")),
    "check": ("engine_installer.iso.check_cli", N_("verify an installer ISO or medium")),
}
DESCRIPTION = N_("Build sample Engine payloads and the installer ISO, and check ISOs and media.")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="engine-iso", description=_(DESCRIPTION))
    sub = parser.add_subparsers(dest="command", metavar=_("COMMAND"), required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=_(help_text), description=_(help_text))
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            sub_parser.set_defaults(module=None)
            continue
        module.add_arguments(sub_parser)
        sub_parser.set_defaults(module=module)
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.module is None:
        print(f"engine-iso {args.command}: not yet implemented")
        return 1
    return args.module.run(args)
