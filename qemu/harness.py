"""A minimal QEMU harness: boot a disk image under SeaBIOS or OVMF, read the serial console.

    with VM(disk=img, firmware="uefi", workdir=tmp_path) as vm:
        match = vm.wait_for(r"ENGINE (\\S+) build (\\S+) slot=(\\w)", timeout=300)

TCG only: nested KVM hangs on the CI machines. The serial console goes to a log file that
wait_for() polls; the VM is always killed when the context exits.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

QEMU = "qemu-system-x86_64"
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
FIRMWARES = ("bios", "uefi")
DISK_BUSES = ("ahci", "nvme", "virtio")


class HarnessError(RuntimeError):
    """QEMU could not start, died, or the awaited output never came."""


@dataclass
class VM:
    disk: Path
    firmware: str = "bios"  # "bios" (SeaBIOS) or "uefi" (OVMF)
    bus: str = "ahci"  # "ahci" (ide-hd on q35's AHCI), "nvme" or "virtio"
    logical_block_size: int = 512  # 4096 for a 4Kn disk (nvme or virtio; IDE/AHCI cannot)
    memory_mb: int = 1024
    workdir: Path | None = None  # serial log and OVMF vars go here (default: a temp dir)
    no_reboot: bool = False  # QEMU exits instead of rebooting the guest
    snapshot: bool = False  # discard disk writes
    disk_format: str = "raw"
    extra_args: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.firmware not in FIRMWARES:
            raise ValueError(f"firmware must be one of {FIRMWARES}")
        if self.bus not in DISK_BUSES:
            raise ValueError(f"bus must be one of {DISK_BUSES}")
        if self.bus == "ahci" and self.logical_block_size != 512:
            raise ValueError("QEMU's AHCI disks have 512-byte sectors: use bus='nvme' for 4Kn")
        self._own_tmp: tempfile.TemporaryDirectory | None = None
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self.started_at = 0.0

    # -- life cycle -----------------------------------------------------------------------
    def command(self) -> list[str]:
        assert self.workdir is not None
        cmd = [
            QEMU,
            "-machine",
            "q35",
            "-accel",
            "tcg",
            "-m",
            str(self.memory_mb),
            "-smp",
            "1",
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            f"file:{self.log_path}",
            "-no-user-config",
            "-nodefaults",
            "-vga",
            "std",
        ]
        if self.no_reboot:
            cmd.append("-no-reboot")
        if self.firmware == "uefi":
            vars_copy = self.workdir / "OVMF_VARS.fd"
            shutil.copyfile(OVMF_VARS, vars_copy)
            cmd += [
                "-drive",
                f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
                "-drive",
                f"if=pflash,format=raw,unit=1,file={vars_copy}",
            ]
        drive = f"if=none,id=disk0,format={self.disk_format},file={self.disk},cache=unsafe"
        if self.snapshot:
            drive += ",snapshot=on"
        cmd += ["-drive", drive]
        sizes = (
            f",logical_block_size={self.logical_block_size},"
            f"physical_block_size={self.logical_block_size}"
        )
        if self.bus == "ahci":
            cmd += ["-device", "ide-hd,drive=disk0,bus=ide.0,bootindex=1"]
        elif self.bus == "nvme":
            cmd += ["-device", f"nvme,drive=disk0,serial=ENGINE0001,bootindex=1{sizes}"]
        else:
            cmd += ["-device", f"virtio-blk-pci,drive=disk0,bootindex=1{sizes}"]
        return cmd + list(self.extra_args)

    def start(self) -> VM:
        if shutil.which(QEMU) is None:
            raise HarnessError(f"{QEMU} not found: install qemu-system-x86")
        if self.workdir is None:
            self._own_tmp = tempfile.TemporaryDirectory(prefix="engine-vm-")
            self.workdir = Path(self._own_tmp.name)
        self.workdir = Path(self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        # A fresh log per start, numbered, so restarts keep earlier logs for debugging.
        n = 0
        while (self.workdir / f"serial-{n}.log").exists():
            n += 1
        self.log_path = self.workdir / f"serial-{n}.log"
        self.log_path.write_bytes(b"")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / f"qemu-{n}.stderr", "wb"),  # noqa: SIM115
        )
        return self

    def kill(self) -> None:
        """Stop QEMU at once (like pulling the power). Safe to call twice."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def wait_exit(self, timeout: float) -> int:
        """Wait for QEMU to exit by itself (e.g. guest reboot with no_reboot)."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise HarnessError(f"QEMU still running after {timeout:.0f} s") from None

    def close(self) -> None:
        self.kill()
        if self._own_tmp is not None:
            self._own_tmp.cleanup()
            self._own_tmp = None

    def __enter__(self) -> VM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        # Keep a caller-given workdir (its logs are test artifacts); always stop QEMU.
        self.close()

    # -- console ----------------------------------------------------------------------------
    def serial_text(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_bytes().decode("utf-8", errors="replace")

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

    def wait_for(self, pattern: str, timeout: float, start: int = 0) -> re.Match:
        """First match of pattern (a regex, multiline) in the serial log, from offset start."""
        regex = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        while True:
            text = self.serial_text()
            match = regex.search(text, start)
            if match:
                return match
            if self.proc is not None and self.proc.poll() is not None:
                raise HarnessError(
                    f"QEMU exited ({self.proc.returncode}) before {pattern!r} appeared; "
                    f"last output:\n{_tail(text)}\n{self._stderr_tail()}"
                )
            if time.monotonic() > deadline:
                raise HarnessError(
                    f"{pattern!r} did not appear within {timeout:.0f} s; last output:\n"
                    f"{_tail(text)}"
                )
            time.sleep(0.5)

    def _stderr_tail(self) -> str:
        assert self.workdir is not None and self.log_path is not None
        err = self.workdir / self.log_path.name.replace("serial", "qemu").replace(".log", ".stderr")
        return err.read_text(errors="replace")[-2000:] if err.exists() else ""


def _tail(text: str, lines: int = 30) -> str:
    # Strip terminal escapes (GRUB's menu) so the excerpt is readable in a test report.
    clean = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    return "\n".join(clean.splitlines()[-lines:])


def qemu_available() -> bool:
    return shutil.which(QEMU) is not None and os.path.exists(OVMF_CODE)
