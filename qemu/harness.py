"""The QEMU harness: boot a laptop-like machine under SeaBIOS or OVMF, read and drive its console.

    with VM(disk=img, firmware="uefi", workdir=tmp_path) as vm:
        match = vm.wait_for(r"ENGINE (\\S+) build (\\S+) slot=(\\w)", timeout=300)

    with laptop(disk=img, media=iso, media_kind="usb", firmware="uefi", workdir=tmp_path) as vm:
        console = SerialConsole(vm)          # qemu/console.py: pyte screen over the serial line

TCG only: nested KVM hangs on the CI machines, so asking for KVM (accel="kvm" or
ENGINE_QEMU_ACCEL=kvm) fails at once with a plain message instead of hanging. The serial console
is a unix-socket chardev: keys go in through it, and QEMU starts the guest only once the harness
is connected, so a reader thread gets every byte from power-on; wait_for() polls those bytes
(QEMU's own log file, kept as an artifact, can repeat bytes under load). A monitor
socket gives screendump (PNG artifacts on failure). The VM is always killed when the context
exits; on an exception a screenshot is saved in the workdir first.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

QEMU = "qemu-system-x86_64"
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
# Secure Boot: OVMF built with SMM (the variable store is then writable only from SMM, so the
# guest cannot switch enforcement off), with Microsoft's keys enrolled as on a laptop, or with
# only the snakeoil test key (a fleet that enrolled its own key: SNAKEOIL_KEY/SNAKEOIL_CERT).
OVMF_CODE_SB = Path("/usr/share/OVMF/OVMF_CODE_4M.secboot.fd")
OVMF_VARS_MS = Path("/usr/share/OVMF/OVMF_VARS_4M.ms.fd")
OVMF_VARS_SNAKEOIL = Path("/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd")
SNAKEOIL_KEY = Path("/usr/share/ovmf/PkKek-1-snakeoil.key")  # PEM, passphrase "snakeoil"
SNAKEOIL_CERT = Path("/usr/share/ovmf/PkKek-1-snakeoil.pem")
# firmware name → (code, variables template); "bios" is SeaBIOS.
UEFI_FIRMWARE = {
    "uefi": (OVMF_CODE, OVMF_VARS),
    "uefi-sb": (OVMF_CODE_SB, OVMF_VARS_MS),
    "uefi-sb-snakeoil": (OVMF_CODE_SB, OVMF_VARS_SNAKEOIL),
}
FIRMWARES = ("bios", *UEFI_FIRMWARE)
DISK_BUSES = ("ahci", "nvme", "virtio")
MEDIA_KINDS = ("dvd", "usb")
SERIAL_CONNECT_SECONDS = 60  # QEMU normally listens within a second
GiB = 1024**3
# A USB stick as imaging staff make it: the ISO written raw onto a bigger stick. The overlay's
# virtual size is the stick's size; only what the guest writes takes space.
USB_STICK_SIZE = 8 * GiB
KVM_MESSAGE = (
    "KVM is not usable on these machines (nested KVM hangs); the harness runs TCG only: "
    "unset ENGINE_QEMU_ACCEL or set it to tcg"
)


class HarnessError(RuntimeError):
    """QEMU could not start, died, or the awaited output never came."""


# TCG's translated-code cache. QEMU's default (1 GiB) makes a live-system boot stall for 15 s
# right after the initramfs hands over (measured: systemd starts at 29-31 s of guest time with
# the default, at 14 s with 96-160 MiB): with that many blocks kept, every page the kernel frees
# from the initramfs and writes again costs an expensive invalidation. 128 MiB is the middle of
# the fast range, and it also keeps each VM's host memory smaller when VMs run side by side.
TCG_ACCEL = "tcg,tb-size=128"


def requested_accel(accel: str | None = None) -> str:
    """The accelerator to use: tcg. Refuses KVM plainly (see KVM_MESSAGE)."""
    accel = (accel or os.environ.get("ENGINE_QEMU_ACCEL") or "tcg").strip().lower()
    if accel.startswith("kvm") or accel == "hvf" or accel == "whpx":
        raise HarnessError(KVM_MESSAGE)
    if accel != "tcg":
        raise HarnessError(f"unknown QEMU accelerator {accel!r}: the harness runs tcg only")
    return "tcg"


@dataclass
class VM:
    disk: Path | None
    # "bios" (SeaBIOS), "uefi" (OVMF), "uefi-sb" (OVMF, Secure Boot on, Microsoft keys) or
    # "uefi-sb-snakeoil" (Secure Boot on, only the snakeoil key enrolled)
    firmware: str = "bios"
    bus: str = "ahci"  # "ahci" (ide-hd on q35's AHCI), "nvme" or "virtio"
    logical_block_size: int = 512  # 4096 for a 4Kn disk (nvme or virtio; IDE/AHCI cannot)
    memory_mb: int = 1024
    workdir: Path | None = None  # serial log and OVMF vars go here (default: a temp dir)
    no_reboot: bool = False  # QEMU exits instead of rebooting the guest
    snapshot: bool = False  # discard disk writes
    disk_format: str = "raw"
    # More disks on the same bus that are not booted from (e.g. a second Engine disk).
    other_disks: list[Path] = field(default_factory=list)
    # Attach the boot disk after other_disks, so the OS enumerates it last (sdb, not sda).
    boot_disk_last: bool = False
    extra_args: list[str] = field(default_factory=list)
    # -- added for the end-to-end matrix (all optional; defaults keep the old behaviour) -----
    media: Path | None = None  # the installer ISO
    media_kind: str = "dvd"  # "dvd" (ide-cd on AHCI) or "usb" (usb-storage on xHCI)
    boot_media: bool = True  # with media: boot it first (the disk stays second)
    usb: bool = False  # an xHCI controller even without a USB stick (a laptop has one)
    kernel: Path | None = None  # direct kernel boot (tool guests)
    initrd: Path | None = None
    append: str = ""
    virtfs: list[tuple[Path, str]] = field(default_factory=list)  # (host dir, tag), read-only
    fw_cfg: dict[str, Path] = field(default_factory=dict)  # "opt/engine/answers.toml" → file
    accel: str | None = None  # None: ENGINE_QEMU_ACCEL or tcg; "kvm" is refused
    smp: int = 1
    cache: str = "unsafe"  # the disk's host cache; "writeback" honours guest flushes (power cuts)

    def __post_init__(self) -> None:
        if self.firmware not in FIRMWARES:
            raise ValueError(f"firmware must be one of {FIRMWARES}")
        if self.bus not in DISK_BUSES:
            raise ValueError(f"bus must be one of {DISK_BUSES}")
        if self.bus == "ahci" and self.logical_block_size != 512:
            raise ValueError("QEMU's AHCI disks have 512-byte sectors: use bus='nvme' for 4Kn")
        if self.media_kind not in MEDIA_KINDS:
            raise ValueError(f"media_kind must be one of {MEDIA_KINDS}")
        self._own_tmp: tempfile.TemporaryDirectory | None = None
        self._sock_dir: str | None = None
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self.serial_socket: Path | None = None
        self.monitor_socket: Path | None = None
        self.started_at = 0.0
        self._run = 0
        self.console_stream = bytearray()
        # (host time, bytes received so far) per chunk from the serial socket: when each
        # console byte arrived (boot-time breakdowns, qemu/boot_times.py).
        self.console_arrivals: list[tuple[float, int]] = []
        self._drainer: threading.Thread | None = None

    # -- life cycle -----------------------------------------------------------------------
    def command(self) -> list[str]:
        assert self.workdir is not None
        requested_accel(self.accel)  # refuses anything but TCG, plainly
        secure_boot = self.firmware.startswith("uefi-sb")
        cmd = [
            QEMU,
            "-machine",
            "q35,smm=on" if secure_boot else "q35",
            "-accel",
            TCG_ACCEL,
            "-m",
            str(self.memory_mb),
            "-smp",
            str(self.smp),
            "-display",
            "none",
            "-no-user-config",
            "-nodefaults",
            "-vga",
            "std",
        ]
        if self.serial_socket is not None:
            # Keys go in through the socket, and every byte comes out of it from power-on: QEMU
            # waits for the harness to connect before it starts the guest (wait=on). The log
            # file is a copy for people (artifacts); under load QEMU's log can repeat bytes of
            # a write the slow socket client took in parts, so the harness reads the socket.
            cmd += [
                "-chardev",
                f"socket,id=ser0,path={self.serial_socket},server=on,wait=on,"
                f"logfile={self.log_path},logappend=on",
                "-serial",
                "chardev:ser0",
                "-monitor",
                f"unix:{self.monitor_socket},server=on,wait=off",
            ]
        else:
            cmd += ["-serial", f"file:{self.log_path}", "-monitor", "none"]
        if self.no_reboot:
            cmd.append("-no-reboot")
        if self.firmware in UEFI_FIRMWARE:
            code, template = UEFI_FIRMWARE[self.firmware]
            vars_copy = self.workdir / f"OVMF_VARS-{self._run}.fd"  # fresh variables each run
            shutil.copyfile(template, vars_copy)
            if secure_boot:  # the SMM build's flash is only writable from SMM
                cmd += ["-global", "driver=cfi.pflash01,property=secure,value=on"]
            cmd += [
                "-drive",
                f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
                "-drive",
                f"if=pflash,format=raw,unit=1,file={vars_copy}",
            ]
        media_first = self.media is not None and self.boot_media
        disk_index = 2 if media_first else 1
        if self.disk is not None:
            disks = [(Path(self.disk), True)] + [(Path(d), False) for d in self.other_disks]
            if self.boot_disk_last:
                disks = disks[1:] + disks[:1]
            for index, (path, is_boot) in enumerate(disks):
                cmd += self._disk_args(index, path, disk_index if is_boot else None)
        media_index = 1 if media_first else 3
        if self.usb or (self.media is not None and self.media_kind == "usb"):
            cmd += ["-device", "qemu-xhci,id=xhci"]
        if self.media is not None:
            if self.media_kind == "dvd":
                cmd += [
                    "-drive",
                    f"if=none,id=media0,media=cdrom,readonly=on,format=raw,file={self.media}",
                    "-device",
                    f"ide-cd,drive=media0,bus=ide.5,bootindex={media_index}",
                ]
            else:
                stick = self.workdir / f"usb-stick-{self._run}.qcow2"
                make_usb_stick(self.media, stick)
                cmd += [
                    "-drive",
                    f"if=none,id=media0,format=qcow2,file={stick},cache=unsafe",
                    "-device",
                    f"usb-storage,bus=xhci.0,drive=media0,removable=on,bootindex={media_index}",
                ]
        if self.kernel is not None:
            cmd += ["-kernel", str(self.kernel)]
            if self.initrd is not None:
                cmd += ["-initrd", str(self.initrd)]
            if self.append:
                cmd += ["-append", self.append]
        for i, (path, tag) in enumerate(self.virtfs):
            cmd += [
                "-fsdev",
                f"local,id=fs{i},path={path},security_model=none,readonly=on,multidevs=remap",
                "-device",
                f"virtio-9p-pci,fsdev=fs{i},mount_tag={tag}",
            ]
        for name, path in self.fw_cfg.items():
            cmd += ["-fw_cfg", f"name={name},file={path}"]
        return cmd + list(self.extra_args)

    def _disk_args(self, index: int, path: Path, bootindex: int | None) -> list[str]:
        drive = f"if=none,id=disk{index},format={self.disk_format},file={path}"
        drive += f",cache={self.cache}"
        if self.snapshot:
            drive += ",snapshot=on"
        boot = f",bootindex={bootindex}" if bootindex is not None else ""
        sizes = (
            f",logical_block_size={self.logical_block_size},"
            f"physical_block_size={self.logical_block_size}"
        )
        if self.bus == "ahci":  # q35's built-in AHCI has six ports, ide.0 .. ide.5 (DVD)
            device = f"ide-hd,drive=disk{index},bus=ide.{index}{boot}"
        elif self.bus == "nvme":
            device = f"nvme,drive=disk{index},serial=ENGINE{index + 1:04d}{boot}{sizes}"
        else:
            device = f"virtio-blk-pci,drive=disk{index}{boot}{sizes}"
        return ["-drive", drive, "-device", device]

    def start(self) -> VM:
        if shutil.which(QEMU) is None:
            raise HarnessError(f"{QEMU} not found: install qemu-system-x86")
        requested_accel(self.accel)  # fail before anything starts
        if self.workdir is None:
            self._own_tmp = tempfile.TemporaryDirectory(prefix="engine-vm-")
            self.workdir = Path(self._own_tmp.name)
        self.workdir = Path(self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        # A fresh log per start, numbered, so restarts keep earlier logs for debugging.
        n = 0
        while (self.workdir / f"serial-{n}.log").exists():
            n += 1
        self._run = n
        self.log_path = self.workdir / f"serial-{n}.log"
        self.log_path.write_bytes(b"")
        # Unix socket paths are limited to 108 bytes: keep them in a short private dir.
        self._sock_dir = tempfile.mkdtemp(prefix="eq-", dir="/tmp")
        self.serial_socket = Path(self._sock_dir) / "serial"
        self.monitor_socket = Path(self._sock_dir) / "monitor"
        self.started_at = time.monotonic()
        with open(self.workdir / f"qemu-{n}.stderr", "wb") as stderr:
            (self.workdir / f"qemu-{n}.cmdline").write_text(" ".join(self.command()) + "\n")
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr
            )
        self.console_stream = bytearray()
        self.console_arrivals = []
        self._drainer = None
        self.__dict__.pop("_serial_conn", None)
        try:
            self._connect_serial()
        except BaseException:
            self.kill()  # never leave a QEMU running behind a failed start
            raise
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """Stop QEMU at once (like pulling the power). Safe to call twice."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def wait_exit(self, timeout: float) -> int:
        """Wait for QEMU to exit by itself (e.g. guest power-off, or reboot with no_reboot)."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise HarnessError(
                f"QEMU still running after {timeout:.0f} s; last output:\n"
                f"{_tail(self.serial_text())}"
            ) from None

    def close(self) -> None:
        self.kill()
        if self.console_stream and self.workdir is not None and self._own_tmp is None:
            (self.workdir / f"console-{self._run}.log").write_bytes(bytes(self.console_stream))
            # A live-system boot that reached screen 1 leaves its time breakdown beside the
            # logs (tests/e2e/conftest.py lists them after the run).
            times = self.boot_times()
            if times is not None:
                (self.workdir / f"boot-times-{self._run}.json").write_text(times.to_json() + "\n")
        conn = self.__dict__.pop("_serial_conn", None)
        if conn is not None:
            conn.close()
        if self._sock_dir is not None:
            shutil.rmtree(self._sock_dir, ignore_errors=True)
            self._sock_dir = None
        if self._own_tmp is not None:
            self._own_tmp.cleanup()
            self._own_tmp = None

    def __enter__(self) -> VM:
        return self.start()

    def __exit__(self, exc_type, *exc: object) -> None:
        # Keep a caller-given workdir (its logs are test artifacts); always stop QEMU.
        if exc_type is not None and self.running and self._own_tmp is None:
            with contextlib.suppress(Exception):
                self.screenshot(self.workdir / f"failure-{self._run}.png")
        self.close()

    # -- monitor ----------------------------------------------------------------------------
    def monitor(self, command: str, timeout: float = 10.0) -> str:
        """Run one human-monitor command; return its output."""
        if self.monitor_socket is None or not self.running:
            raise HarnessError("the VM is not running: no monitor")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(self.monitor_socket))
            data = b""
            while not data.endswith(b"(qemu) "):
                data += sock.recv(4096)
            sock.sendall(command.encode() + b"\n")
            out = b""
            while not out.endswith(b"(qemu) "):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                out += chunk
        return re.sub(r"\x1b\[[0-9;]*[A-Za-z]|\r", "", out.decode(errors="replace"))

    def screendump(self, ppm: Path) -> Path:
        """The VGA screen as a binary PPM file (the monitor's screendump)."""
        ppm = Path(ppm)
        ppm.unlink(missing_ok=True)
        self.monitor(f"screendump {ppm}")
        for _ in range(50):  # QEMU writes the file asynchronously on some displays
            if ppm.exists() and ppm.stat().st_size > 0:
                break
            time.sleep(0.1)
        return ppm

    def screenshot(self, png: Path) -> Path:
        """The VGA screen as PNG (screendump → PPM → imagemagick convert)."""
        png = Path(png)
        ppm = self.screendump(png.with_suffix(".ppm"))
        subprocess.run(["convert", str(ppm), str(png)], check=True, capture_output=True)
        ppm.unlink()
        return png

    # -- console ----------------------------------------------------------------------------
    def serial_bytes(self) -> bytes:
        """Every byte the guest wrote to its serial port since power-on."""
        if self._drainer is not None:
            if not self.running:
                self._drainer.join(timeout=5)  # QEMU is gone: take in what it last sent
            return bytes(self.console_stream)
        if self.log_path is None or not self.log_path.exists():
            return b""
        return self.log_path.read_bytes()

    def serial_text(self) -> str:
        return self.serial_bytes().decode("utf-8", errors="replace")

    def send_serial(self, data: bytes) -> None:
        """Type bytes on the serial console (the guest's ttyS0)."""
        if self.serial_socket is None or not self.running:
            raise HarnessError("the VM is not running: cannot type on its serial console")
        self._connect_serial()
        self._serial_conn.sendall(data)

    def _connect_serial(self) -> None:
        """Connect to the serial socket once, right after start: a reader thread keeps what
        QEMU sends to this client (what the console driver replays) and keeps it drained
        (QEMU stalls the guest's serial port when a connected client does not read)."""
        if "_serial_conn" in self.__dict__:
            return
        assert self.serial_socket is not None
        # The socket file appears a moment before QEMU listens on it, and on a loaded 2-core
        # machine that moment can be long: retry refused connections until the deadline.
        deadline = time.monotonic() + SERIAL_CONNECT_SECONDS
        while True:
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                conn.connect(str(self.serial_socket))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                conn.close()
                if time.monotonic() > deadline or not self.running:
                    state = "running" if self.running else f"exited ({self.proc.returncode})"
                    raise HarnessError(
                        f"QEMU did not open its serial socket {self.serial_socket}; QEMU {state}"
                    ) from None
                time.sleep(0.05)
        self._serial_conn = conn
        self._drainer = threading.Thread(
            target=_drain, args=(conn, self.console_stream, self.console_arrivals), daemon=True
        )
        self._drainer.start()

    def console_bytes(self) -> bytes:
        """Everything QEMU sent to the serial client since power-on (the console driver's
        view; the same as serial_bytes())."""
        return bytes(self.console_stream)

    def arrival_time(self, offset: int) -> float | None:
        """Seconds after QEMU started at which console byte `offset` arrived (None: not yet)."""
        index = bisect.bisect_right(self.console_arrivals, offset, key=lambda a: a[1])
        if index >= len(self.console_arrivals):
            return None
        return self.console_arrivals[index][0] - self.started_at

    def boot_times(self):
        """Where a live-system boot's time went (qemu/boot_times.py), once screen 1 is on the
        serial console; None before, or for a guest that prints no boot report."""
        from .boot_times import breakdown

        return breakdown(self)

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
            time.sleep(0.25)

    def _stderr_tail(self) -> str:
        assert self.workdir is not None and self.log_path is not None
        err = self.workdir / self.log_path.name.replace("serial", "qemu").replace(".log", ".stderr")
        return err.read_text(errors="replace")[-2000:] if err.exists() else ""


def laptop(
    disk: Path | None,
    *,
    firmware: str = "bios",
    media: Path | None = None,
    media_kind: str = "dvd",
    nvme: bool = False,
    sector_size: int = 512,
    workdir: Path | None = None,
    **kwargs,
) -> VM:
    """A laptop-like machine: q35, 2 GiB, the disk on AHCI (or NVMe; 4Kn needs NVMe), xHCI
    USB, the installer medium as a DVD drive or a USB stick."""
    bus = "nvme" if nvme or sector_size != 512 else "ahci"
    return VM(
        disk=disk,
        firmware=firmware,
        bus=bus,
        logical_block_size=sector_size,
        memory_mb=kwargs.pop("memory_mb", 2048),
        workdir=workdir,
        media=media,
        media_kind=media_kind,
        usb=True,
        **kwargs,
    )


ENGINE_LINE = r"ENGINE (\S+) build (\S+) slot=([AB]) vms=(\d+)"
# The whole status line: also what the sample Engine read from the SecureBoot variable.
ENGINE_STATUS = ENGINE_LINE + r" secureboot=(on|off)"
DISK_BOOT_TIMEOUT = 300  # an idle 2-core machine needs ~10 s


def boot_installed_disk(
    image: Path,
    workdir: Path,
    *,
    firmware: str = "bios",
    disk_format: str = "raw",
    nvme: bool = False,
    sector_size: int = 512,
    timeout: float = DISK_BOOT_TIMEOUT,
    pattern: str = ENGINE_LINE,
) -> tuple[tuple[str, ...], float]:
    """Boot an installed disk alone (no medium) until the sample Engine's status line
    `ENGINE <version> build <build> slot=<A|B> vms=<n>`: ((version, build, slot, vms), s).
    pattern=ENGINE_STATUS adds the line's secureboot=on|off as a fifth group."""
    vm = laptop(image, firmware=firmware, nvme=nvme, sector_size=sector_size,
                workdir=workdir, disk_format=disk_format, memory_mb=1024)  # fmt: skip
    with vm:
        match = vm.wait_for(pattern, timeout=timeout)
        return match.groups(), vm.elapsed


def make_usb_stick(iso: Path, stick: Path, size: int = USB_STICK_SIZE) -> Path:
    """A writable qcow2 'stick' holding the ISO's bytes at offset 0 and larger than the ISO
    (a copy-on-write overlay: the ISO itself is never written)."""
    size = max(size, Path(iso).stat().st_size)
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(Path(iso).resolve()),
         str(stick), str(size)],
        check=True, capture_output=True,
    )  # fmt: skip
    return stick


def make_overlay(base: Path, overlay: Path, base_format: str = "raw") -> Path:
    """A qcow2 copy-on-write overlay of a disk image (cheap per-run copies of a prepared disk)."""
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", base_format, "-b",
         str(Path(base).resolve()), str(overlay)],
        check=True, capture_output=True,
    )  # fmt: skip
    return overlay


def _drain(conn: socket.socket, sink: bytearray, arrivals: list[tuple[float, int]]) -> None:
    with contextlib.suppress(OSError):
        while chunk := conn.recv(65536):
            sink.extend(chunk)
            arrivals.append((time.monotonic(), len(sink)))


def _tail(text: str, lines: int = 30) -> str:
    # Strip terminal escapes (GRUB's menu) so the excerpt is readable in a test report.
    clean = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    return "\n".join(clean.splitlines()[-lines:])


def qemu_available() -> bool:
    return shutil.which(QEMU) is not None and os.path.exists(OVMF_CODE)
