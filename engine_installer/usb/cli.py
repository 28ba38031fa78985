"""engine-usb: list sticks, write the Engine ISO to them (verified), or verify one."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from engine_installer.base.cli_help import ArgumentParser
from engine_installer.base.errors import UserError, cli_entry
from engine_installer.base.i18n import N_, _
from engine_installer.disks.blockcopy import CopyError, Mismatch, verify_image
from engine_installer.machine.snapshot import DiskInfo
from engine_installer.ondisk import medium as medium_check
from engine_installer.usb import devices, writer
from engine_installer.usb.confirm import confirm_erase, describe, human_size
from engine_installer.usb.progress import Progress
from engine_installer.usb.writer import StickError, StickResult

DESCRIPTION = N_("List USB sticks, write the Engine ISO to them (verified), or verify one.")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="engine-usb", description=_(DESCRIPTION))
    sub = parser.add_subparsers(dest="command", metavar=_("COMMAND"), required=True)
    lister = sub.add_parser("list", help=_("list USB/removable sticks that may be written"))
    lister.add_argument("--json", action="store_true", help=_("print JSON for scripts"))
    lister.add_argument("--iso", type=Path, help=_("also hide the disk this ISO lives on"))
    write = sub.add_parser("write", help=_("write an ISO to one or more sticks and verify them"))
    write.add_argument("iso", type=Path, metavar="ISO", help=_("the Engine installer ISO"))
    write.add_argument(
        "devices", nargs="+", metavar="DEVICE", help=_("the sticks to write (/dev/sdX)")
    )
    write.add_argument("--yes", action="store_true", help=_("do not ask for confirmation"))
    write.add_argument("--json", action="store_true", help=_("one JSON progress object per line"))
    write.add_argument(
        "--no-unmount", action="store_true", help=_("refuse sticks with mounted partitions")
    )
    write.add_argument(
        "--force", action="store_true", help=_("write an image that is not Engine's")
    )
    write.add_argument(
        "--allow-non-removable",
        action="store_true",
        help=_("allow any whole disk named explicitly (labs, tests, loop devices)"),
    )
    verify = sub.add_parser("verify", help=_("check that a stick holds exactly the ISO"))
    verify.add_argument("iso", type=Path, metavar="ISO", help=_("the Engine installer ISO"))
    verify.add_argument("device", metavar="DEVICE", help=_("the stick to check (/dev/sdX)"))
    verify.add_argument("--json", action="store_true", help=_("one JSON progress object per line"))
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return {"list": cmd_list, "write": cmd_write, "verify": cmd_verify}[args.command](args)


# --- list ----------------------------------------------------------------------------------


def disk_json(disk: DiskInfo) -> dict:
    return {
        "path": disk.path,
        "model": disk.model,
        "vendor": disk.vendor,
        "serial": disk.serial,
        "size": disk.size,
        "bus": disk.bus,
        "removable": disk.removable,
        "partitions": [
            {"path": p.path, "size": p.size, "fstype": p.fstype, "mountpoint": p.mountpoint}
            for p in disk.partitions
        ],
    }


def cmd_list(args: argparse.Namespace) -> int:
    sticks = devices.list_sticks(devices.scan(iso=args.iso))
    if args.json:
        print(json.dumps([disk_json(disk) for disk in sticks], indent=2))
        return 0
    if not sticks:
        print("no USB or removable sticks found (system disks are never listed)")
        return 0
    for disk in sticks:
        print(describe(disk))
        for part in disk.partitions:
            where = f"mounted on {part.mountpoint}" if part.mountpoint else "not mounted"
            print(
                f"    {part.path:<16} {human_size(part.size):>9}  {part.fstype or '-':<6} {where}"
            )
    return 0


# --- write ---------------------------------------------------------------------------------


def require_root(command: str) -> None:
    if os.geteuid() != 0:
        raise UserError(f"engine-usb {command} needs root to open block devices: run it with sudo")


def image_size(image: Path) -> int:
    try:
        st = image.stat()
    except FileNotFoundError:
        raise UserError(f"{image} not found: check the path to the ISO") from None
    if not image.is_file():
        raise UserError(f"{image} is not a regular file: name the ISO file")
    if st.st_size == 0:
        raise UserError(f"{image} is empty: download or build the ISO again")
    if not os.access(image, os.R_OK):
        raise UserError(f"{image} cannot be read: check its permissions")
    return st.st_size


def check_image(image: Path, force: bool, progress: Progress | None) -> str:
    """Refuse what would not make a bootable Engine stick; return a label for the prompt."""
    engine = medium_check.is_engine_iso(image)
    if not engine and not force:
        raise UserError(
            f"{image} is not an Engine installer ISO (no /engine/manifest.json): "
            "pass --force to write another image"
        )
    if engine and not force and not medium_check.has_hybrid_mbr(image):
        raise UserError(
            f"{image} has no hybrid MBR, so a stick written from it would not boot: "
            "rebuild the ISO, or pass --force to write it anyway"
        )
    if not engine:
        return str(image)
    report = None
    if progress is not None:
        name = image.name

        def report(event) -> None:
            progress.update(name, "checking", event.done, event.total)

    medium_check.check_iso(image, report)
    manifest = medium_check.manifest_from_iso(image)
    return f"{image} (Engine {manifest.get('version', '?')}, build {manifest.get('build', '?')})"


def precheck(disk: DiskInfo, size: int, no_unmount: bool) -> None:
    """Per-stick conditions: they fail that stick, not the whole run."""
    if disk.size < size:
        raise StickError(
            f"{disk.path} ({human_size(disk.size)}) is smaller than the ISO "
            f"({human_size(size)}): use a bigger stick"
        )
    if disk.read_only:
        raise StickError(f"{disk.path} is read-only: check the stick's write-protect switch")
    mounted = devices.mounted_partitions(disk)
    if mounted and no_unmount:
        first = mounted[0]
        raise StickError(
            f"{disk.path} is mounted ({first.path} on {first.mountpoint}): unmount it or "
            "drop --no-unmount"
        )
    if not mounted:  # probe now so a busy stick is refused before anyone confirms
        os.close(writer.open_device(disk.path, write=True))


def unmount(disk: DiskInfo) -> None:
    for part in devices.mounted_partitions(disk):
        done = subprocess.run(
            ["umount", "--all-targets", part.path], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            detail = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
            raise StickError(
                f"{part.path} could not be unmounted ({detail}): close what uses it and retry"
            )


def cmd_write(args: argparse.Namespace) -> int:
    require_root("write")
    image: Path = args.iso
    size = image_size(image)
    # Whole-run errors first: a typo'd device name stops everything before anything is touched.
    disks = devices.scan(iso=image)
    targets: list[DiskInfo] = []
    for name in args.devices:
        disk = devices.resolve_target(name, disks, args.allow_non_removable)
        if any(t.path == disk.path for t in targets):
            raise UserError(f"{disk.path} is named twice: name each stick once")
        targets.append(disk)
    checker = Progress([image.name], json_lines=args.json)
    label = check_image(image, args.force, checker)

    results = {
        disk.path: StickResult(disk.path, disk.model, disk.serial, disk.size, image_bytes=size)
        for disk in targets
    }
    ready: list[DiskInfo] = []
    for disk in targets:
        try:
            precheck(disk, size, args.no_unmount)
            ready.append(disk)
        except StickError as err:
            if len(targets) == 1:
                raise
            results[disk.path].message = str(err)
    if not ready:
        return finish(list(results.values()), args.json)
    confirm_erase(ready, label, args.yes)

    fds: dict[str, int] = {}
    for disk in ready:
        try:
            if not args.no_unmount:
                unmount(disk)
            fds[disk.path] = writer.open_device(disk.path, write=True)
        except StickError as err:
            if len(targets) == 1:
                raise
            results[disk.path].message = str(err)
    progress = Progress(list(fds), json_lines=args.json)
    threads = [
        threading.Thread(
            target=_write_one, args=(image, size, fd, results[path], progress), daemon=True
        )
        for path, fd in fds.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for fd in fds.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    if len(targets) == 1 and not results[targets[0].path].ok:
        raise StickError(results[targets[0].path].message)
    return finish(list(results.values()), args.json)


def _write_one(image: Path, size: int, fd: int, result: StickResult, progress: Progress) -> None:
    """One stick's thread: any failure is recorded, never propagated to the other sticks."""
    try:
        writer.write_and_verify(image, size, fd, result, progress.reporter(result.device))
        progress.update(result.device, "done", size, size, "written and verified")
    except StickError as err:
        result.message = str(err)
        progress.update(result.device, "failed", 0, size, result.message)
    except Exception as err:  # noqa: BLE001 - one stick's bug must not stop the others
        result.message = f"{result.device} failed unexpectedly: {err!r}"
        progress.update(result.device, "failed", 0, size, result.message)


def finish(results: list[StickResult], as_json: bool) -> int:
    if as_json:
        for res in results:
            record = {
                "result": res.device,
                "ok": res.ok,
                "model": res.model,
                "serial": res.serial,
                "size": res.size,
                "write_mb_per_s": round(res.write_mbps, 1),
                "verify_mb_per_s": round(res.verify_mbps, 1),
                "write_s": round(res.write_seconds, 3),
                "verify_s": round(res.verify_seconds, 3),
                "message": res.message,
            }
            print(json.dumps(record), flush=True)
    else:
        print(result_table(results))
    failed = sum(not res.ok for res in results)
    if failed:
        print(f"error: {failed} of {len(results)} sticks failed; see the table", file=sys.stderr)
    return 1 if failed else 0


def result_table(results: list[StickResult]) -> str:
    rows = [("DEVICE", "MODEL", "SERIAL", "SIZE", "RESULT", "WRITE", "VERIFY")]
    for res in results:
        rows.append(
            (
                res.device,
                res.model or "-",
                res.serial or "-",
                human_size(res.size),
                "ok" if res.ok else "FAILED",
                f"{res.write_mbps:.0f} MB/s" if res.write_seconds else "-",
                f"{res.verify_mbps:.0f} MB/s" if res.verify_seconds else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines += [f"{res.device}: {res.message}" for res in results if not res.ok]
    return "\n".join(line.rstrip() for line in lines)


# --- verify --------------------------------------------------------------------------------


def cmd_verify(args: argparse.Namespace) -> int:
    require_root("verify")
    image: Path = args.iso
    size = image_size(image)
    try:
        is_block = Path(args.device).is_block_device()
    except OSError:
        is_block = False
    if not Path(args.device).exists():
        raise UserError(f"{args.device} does not exist: check the name with `engine-usb list`")
    if not is_block:
        raise UserError(f"{args.device} is not a block device: name a stick such as /dev/sdb")
    fd = writer.open_device(args.device, write=False)
    progress = Progress([args.device], json_lines=args.json)
    try:
        if writer.device_size(fd) < size:
            raise UserError(f"{args.device} is smaller than {image}: it cannot hold this ISO")
        image_fd = writer.open_image(image)
        try:
            checked = verify_image(
                fd,
                size,
                block=writer.logical_block_size(fd),
                source=image_fd,
                digest=True,
                report=lambda step, done, total: progress.update(
                    args.device, writer.PHASES[step], done, total
                ),
            )
        finally:
            os.close(image_fd)
    except Mismatch as err:
        progress.update(args.device, "failed", 0, size, "does not match the ISO")
        raise UserError(
            f"{args.device} does not hold {image} ({err}): the stick is damaged or holds "
            "another image; write it again"
        ) from None
    except CopyError as err:
        if err.side == "source":
            raise UserError(f"{image} cannot be read ({err.reason}): check the ISO") from None
        raise UserError(
            f"{args.device} cannot be read ({err.reason}): the stick is faulty"
        ) from None
    finally:
        os.close(fd)
    actual = checked.sha256
    progress.update(args.device, "done", size, size, "matches the ISO")
    if args.json:
        progress.event({"result": args.device, "ok": True, "sha256": actual})
    else:
        print(f"{args.device} holds exactly {image} (sha256 {actual})")
    return 0
