"""engine-iso netboot: export an installer ISO for network boot, and serve it in a lab.

engine-iso netboot ISO --out DIR [--url URL] [--autoinstall URL] [--report URL]
                       [--menu-default install|autoinstall] [--serve ...]
engine-iso netboot --serve [--port N] [--tftp-port N] [--bind ADDR] DIR
"""

from __future__ import annotations

import argparse
from pathlib import Path

from engine_installer.base.errors import UserError
from engine_installer.iso.net import export, serve


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, metavar="ISO|DIR",
                        help="the installer ISO to export, or (with --serve alone) an export "
                        "directory to serve")  # fmt: skip
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="the export directory to write (served as it is)")  # fmt: skip
    parser.add_argument("--url", metavar="URL",
                        help="where DIR is served over HTTP, e.g. http://192.168.1.5/engine/ "
                        "(default: the TFTP server, port 80 or --port)")  # fmt: skip
    parser.add_argument("--autoinstall", metavar="URL",
                        help="answer-file URL for unattended installs; may hold {serial} and "
                        "{mac}; adds an unattended menu entry (opt-in)")  # fmt: skip
    parser.add_argument("--report", metavar="URL",
                        help="URL that unattended installs POST their result to")  # fmt: skip
    parser.add_argument("--menu-default", choices=export.MENU_DEFAULTS, default="install",
                        help="the PXE menu entry after the timeout, and what UEFI HTTP boots do "
                        "(default: install, the interactive installer)")  # fmt: skip
    parser.add_argument("--serve", action="store_true",
                        help="serve the export over HTTP and TFTP until Ctrl-C (lab)")  # fmt: skip
    parser.add_argument("--port", type=int, default=None, metavar="N",
                        help="HTTP port for --serve (default 80)")  # fmt: skip
    parser.add_argument("--tftp-port", type=int, default=69, metavar="N",
                        help="TFTP port for --serve (default 69; 0 = no TFTP)")  # fmt: skip
    parser.add_argument("--bind", default="0.0.0.0", metavar="ADDR",
                        help="address --serve listens on (default: all)")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    source: Path = args.source
    for name in ("port", "tftp_port"):
        value = getattr(args, name)
        if value is not None and not 0 <= value <= 65535:
            raise UserError(f"--{name.replace('_', '-')} {value} is not a port: use 1-65535")
    if source.is_dir():
        if not args.serve:
            raise UserError(f"{source} is a directory: serve an export with --serve, or give "
                            "an ISO and --out DIR to export one")  # fmt: skip
        if args.out is not None:
            raise UserError("--out is for exporting an ISO: give the ISO, not a directory")
        export.load_info(source)  # refuse a directory that is not an export
        directory = source
    else:
        if args.out is None:
            raise UserError(f"no --out: give the export directory, e.g. engine-iso netboot "
                            f"{source} --out /srv/engine")  # fmt: skip
        site = export.SiteArgs(autoinstall=args.autoinstall, report=args.report)
        export.export(source, args.out, url=args.url, port=args.port if args.serve else None,
                      site=site, menu_default=args.menu_default)  # fmt: skip
        directory = args.out
        if not args.serve:
            return 0
    return serve.serve_forever(
        directory,
        bind=args.bind,
        port=80 if args.port is None else args.port,
        tftp_port=args.tftp_port or None,
    )
