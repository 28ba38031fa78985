"""engine-iso: sample-payload, build and check.

Each sub-command lives in its own module with `add_arguments(parser)` and `run(args) -> int`;
this file only routes, so the modules can grow independently.
"""

from __future__ import annotations

import argparse
import importlib

from engine_installer.base.errors import cli_entry

SUBCOMMANDS = {
    "sample-payload": ("engine_installer.iso.sample_payload", "build a sample Engine payload"),
    "build": ("engine_installer.iso.builder", "build the installer ISO from a payload"),
    "check": ("engine_installer.iso.check_cli", "verify an installer ISO or medium"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="engine-iso", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text)
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
