"""Unattended installs chosen at boot: the `engine.autoinstall=` kernel argument.

    engine.autoinstall=fwcfg              QEMU's -fw_cfg name=opt/engine/answers.toml,file=...
    engine.autoinstall=fwcfg:opt/x.toml   another fw_cfg name
    engine.autoinstall=/path/answers.toml a path in the live system
    engine.autoinstall=answers.toml       a path on the boot medium (/run/live/medium/...)
    engine.autoinstall=http://host/answers/{serial}.toml
                                          an answer file per laptop over the network, with a
                                          default (netboot/answers.py); a failed fetch stops with
                                          the reason on every console and installs nothing

Without the argument the text UI runs and asks before touching any disk. The live system's
`engine-installer` launcher (what its console units run, `engine-installer [--ascii]`) calls
main() here: with an answer file it runs `engine-installer --answers FILE` once per boot on the
first console to get there (a lock keeps the other consoles from starting a second run; they
say where it runs); otherwise, and for any other arguments, it is plain `engine-installer`.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
import time
from pathlib import Path

from engine_installer.base.errors import UserError, cli_entry
from engine_installer.netboot.names import AUTOINSTALL_ARG, REPORT_ARG, cmdline_value

ARGUMENT = AUTOINSTALL_ARG
REPORT_ARGUMENT = REPORT_ARG  # where the result goes (netboot/report.py)
FWCFG_NAME = "opt/engine/answers.toml"
FWCFG_ROOT = Path("/sys/firmware/qemu_fw_cfg/by_name")
MEDIUM_ROOT = Path("/run/live/medium")
LOCK = Path("/run/engine-autoinstall.lock")
COPY = Path("/run/engine-autoinstall.toml")
DONE = Path("/run/engine-autoinstall.done")
STOPPED = Path("/run/engine-autoinstall.stopped")  # why an unattended run did not start
LOG_HINT = "/var/log/engine-installer/"


def autoinstall_value(cmdline: str, name: str = ARGUMENT) -> str | None:
    """The last engine.autoinstall= (or `name`=) value on the command line (None when absent)."""
    return cmdline_value(cmdline, name)


def find_answer_file(
    cmdline: str, *, fwcfg_root: Path = FWCFG_ROOT, medium_root: Path = MEDIUM_ROOT
) -> Path | None:
    """Where the answer file named by engine.autoinstall= is; None without the argument.
    UserError (one line) when the argument names a file that is not there."""
    value = autoinstall_value(cmdline)
    if value is None:
        return None
    if value == "":
        raise UserError(
            f"{ARGUMENT} needs a value: {ARGUMENT}=fwcfg or {ARGUMENT}=PATH (on the medium)"
        )
    if value == "fwcfg" or value.startswith("fwcfg:"):
        name = value.partition(":")[2] or FWCFG_NAME
        path = fwcfg_root / name / "raw"
        if not path.exists() and fwcfg_root == FWCFG_ROOT:
            # The sysfs view of fw_cfg is a module in Debian's kernel.
            subprocess.run(["modprobe", "qemu_fw_cfg"], capture_output=True, check=False)
            for _ in range(20):
                if path.exists():
                    break
                time.sleep(0.1)
        if not path.exists():
            raise UserError(
                f"{ARGUMENT}={value}: QEMU fw_cfg has no {name}; start QEMU with "
                f"-fw_cfg name={name},file=ANSWERS.toml"
            )
        return path
    path = Path(value) if value.startswith("/") else medium_root / value
    if not path.is_file():
        raise UserError(f"{ARGUMENT}={value}: no answer file at {path}; check the boot entry")
    return path


def _console_name() -> str:
    try:
        return Path("/proc/self/fd/0").resolve().name
    except OSError:
        return "another console"


def _stop_text(message: str) -> str:
    return (
        f"Unattended install stopped: {message}\n" "Nothing was installed and no disk was touched."
    )


def _stopped(text: str, installer_main, argv: list[str]) -> int:
    """Show why the unattended install did not run and wait for a person: Enter opens the
    installer's screens (nothing is installed without the technician's choices)."""
    print(text, flush=True)
    if sys.stdin is not None and sys.stdin.isatty():
        print("Press Enter for the installer's screens.", flush=True)
        sys.stdin.readline()
        return installer_main(argv)
    while True:  # no keyboard here: keep the message on the screen
        time.sleep(3600)


def _fetch_remote(value: str) -> tuple[bytes, str]:
    """The answer file of this laptop from engine.autoinstall=http://... (see netboot.answers)."""
    from engine_installer.netboot import answers, live

    boot = live.current()
    mac = boot.mac if boot else ""
    if boot and boot.problem:
        raise UserError(f"the network is not usable ({boot.problem})")
    return answers.fetch_answers(value, answers.machine_serial(), mac)


@cli_entry
def main(argv: list[str] | None = None) -> int:
    from engine_installer.cli import main as installer_main

    argv = list(sys.argv[1:] if argv is None else argv)
    # Only the plain installer start (as the live units do it) turns unattended: a technician
    # running `engine-installer detect` in a shell gets exactly that.
    # Not netboot.answers (its HTTP client imports cost seconds under emulation): the plain
    # start must not pay for them.
    from engine_installer.cli import build_parser
    from engine_installer.netboot.live import boot_arguments
    from engine_installer.netboot.names import is_url

    args, _ = build_parser().parse_known_args(argv)
    if args.command or args.answers or args.dry_run or args.profile or DONE.exists():
        return installer_main(argv)
    # The command line plus what a UEFI HTTP boot took over from the export (netboot.live).
    cmdline = boot_arguments()
    value = autoinstall_value(cmdline)
    remote = value is not None and is_url(value)
    answers = None if remote else find_answer_file(cmdline)
    if answers is None and not remote:
        return installer_main(argv)
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            where = lock.read().strip() or "another console"
            print(f"An unattended install ({ARGUMENT}) is running on {where}; wait for it there.")
            fcntl.flock(lock, fcntl.LOCK_EX)  # wait until it ends
            stopped = STOPPED.read_text() if STOPPED.exists() else ""
            if not stopped:
                print(f"The unattended install has finished; its log is in {LOG_HINT}.", flush=True)
                return 0
        else:
            lock.truncate(0)
            lock.write(_console_name())
            lock.flush()
            stopped = ""
            if remote:
                assert value is not None
                try:
                    data, where = _fetch_remote(value)
                except UserError as err:
                    stopped = _stop_text(str(err))
                    _log_stop(stopped)
                    STOPPED.write_text(stopped)
                    DONE.write_text("stopped\n")
                    _report_stop(autoinstall_value(cmdline, REPORT_ARGUMENT), str(err))
                else:
                    COPY.write_bytes(data)
            else:
                # A copy: fw_cfg's raw file is not seekable everywhere, and a relative [source]
                # path must not point into sysfs.
                assert answers is not None
                shutil.copyfile(answers, COPY)
                where = str(answers)
            if not stopped:
                print(f"Unattended install: answers from {where} ({ARGUMENT})", flush=True)
                source = ["--source", str(args.source)] if args.source else []
                report = autoinstall_value(cmdline, REPORT_ARGUMENT)
                source += ["--report", report] if report else []
                status = installer_main(["--answers", str(COPY), *source])
                # Once per boot: when the console's unit restarts, the text UI comes up instead
                # (reboot / power off), never a second unattended run.
                DONE.write_text(f"{status}\n")
                print(f"Unattended install finished (exit {status}).", flush=True)
                return status
    return _stopped(stopped, installer_main, argv)


def _report_stop(url: str | None, error: str) -> None:
    """Tell the fleet owner that this laptop did not install (no disk was touched)."""
    if url:
        from engine_installer.netboot import report

        report.send(url, report.build(None, error=f"no answers: {error}"))


def _log_stop(text: str) -> None:
    from engine_installer.base.logs import log, start_log

    path = start_log("unattended")
    log.error(text.replace("\n", " "))
    print(f"log: {path}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
