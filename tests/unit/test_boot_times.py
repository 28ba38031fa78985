"""The boot-time report: the guest's line (kernel log, /proc) and the harness's breakdown."""

from __future__ import annotations

import os
import threading
import time

import pytest

from engine_installer.iso.bootloader import LOADING_MESSAGE
from engine_installer.machine import probe
from engine_installer.tui import boot_times
from qemu.boot_times import PHASES, BootTimes, from_stream

KMSG = """\
6,1,0,-;Linux version 6.1.0-57-amd64
6,310,4752120,-;Run /init as init process
 SUBSYSTEM=cpu
6,311,4752197,-;  with arguments:
6,900,14372829,-;Not activating Mandatory Access Control
6,901,15313867,-;systemd[1]: Inserted module 'autofs4'
6,902,15506757,-;systemd[1]: systemd 252.39-1~deb12u2 running in system mode (+PAM)
"""


def test_kernel_marks_from_the_kernel_log(tmp_path):
    kmsg = tmp_path / "kmsg"
    kmsg.write_text(KMSG)
    assert boot_times.kernel_marks(kmsg) == {"init": 4.75212, "systemd": 15.506757}
    assert boot_times.kernel_marks(tmp_path / "absent") == {}


def test_process_start_reads_field_22_after_the_command_name(tmp_path):
    stat = tmp_path / "stat"
    # A command name with a space and a parenthesis must not shift the fields.
    fields = ["S"] + ["0"] * 18 + ["2170"] + ["0"] * 10
    stat.write_text(f"4242 (engine (x) y) {' '.join(fields)}\n")
    assert boot_times.process_start(stat) == 2170 / os.sysconf("SC_CLK_TCK")
    assert boot_times.process_start() is not None  # this process


def test_report_once_per_console_on_the_live_system_only(tmp_path, monkeypatch):
    kmsg = tmp_path / "kmsg"
    kmsg.write_text(KMSG)
    monkeypatch.setattr(boot_times, "KMSG", kmsg)
    monkeypatch.setattr(boot_times, "STATE_DIR", tmp_path / "state")
    monkeypatch.setattr(boot_times, "LIVE_MEDIUM", tmp_path / "medium")
    assert boot_times.report(20.0, "ttyS0") is None  # not a live system
    (tmp_path / "medium").mkdir()
    line = boot_times.report(20.5, "ttyS0")
    assert line is not None and line.startswith("engine-boot-times: init=4.75 systemd=15.51 ")
    figures = boot_times.parse(f"noise\r\n{line}\r\n\x1b[?1049h more")
    assert figures is not None and figures["ui"] == 20.5 and set(figures) == set(boot_times.FIELDS)
    assert boot_times.report(21.0, "ttyS0") is None  # the unit restarted the installer
    assert boot_times.report(21.0, "tty1") is not None


def test_parse_without_a_report():
    assert boot_times.parse("GNU GRUB ... no report") is None


def test_breakdown_puts_host_and_guest_clocks_together():
    report = b"engine-boot-times: init=2.00 systemd=5.00 installer=7.50 ui=9.00"
    loading = LOADING_MESSAGE.encode()
    data = b"\x1b[2J GNU GRUB  version 2.06 ..." + loading + b" (5.0)...\r\n"
    data += report + b"\r\n\x1b[H\x1b[2J header 1/5 Install choice ..."
    marks = {b"GNU GRUB": 1.0, loading: 6.0, report: 20.0, b"1/5 Install choice": 21.5}
    positions = {data.index(k) + len(k) - 1: t for k, t in marks.items()}

    def arrival(offset: int) -> float | None:
        return min((t for end, t in positions.items() if end >= offset), default=None)

    times = from_stream(data, arrival)
    assert times == BootTimes(firmware=1.0, menu=5.0, load=5.0, kernel=2.0, initramfs=3.0,
                              systemd=2.5, python=1.5, frame=1.5, total=21.5)  # fmt: skip
    assert sum(getattr(times, p) for p in PHASES) == pytest.approx(times.total)
    assert "screen 1 after 21.5 s: firmware 1.0 | menu 5.0 | load 5.0 |" in times.summary()
    assert BootTimes(**__import__("json").loads(times.to_json())) == times
    assert from_stream(data.replace(b"1/5 Install choice", b""), arrival) is None  # not yet


# -- the disk probe waits for udev's coldplug ----------------------------------------------------


@pytest.fixture
def udev(tmp_path, monkeypatch):
    block = tmp_path / "block"
    for name, dev in (("sdz", "8:240"), ("sdz/sdz1", "8:241")):
        (block / name).mkdir(parents=True)
        (block / name / "dev").write_text(dev + "\n")
    (block / "sdz/sdz1/partition").write_text("1\n")
    data = tmp_path / "udev-data"
    data.mkdir()
    calls = []
    monkeypatch.setattr(probe, "SYS_BLOCK", block)
    monkeypatch.setattr(probe, "UDEV_DATA", data)
    monkeypatch.setattr(probe.subprocess, "run", lambda cmd, **kw: calls.append(cmd) or
                        type("R", (), {"returncode": 0})())  # fmt: skip
    return data, calls


def test_probe_waits_until_udev_has_seen_the_disk_and_its_partitions(udev):
    data, calls = udev

    def coldplug() -> None:
        time.sleep(0.3)
        (data / "b8:240").write_text("")
        time.sleep(0.2)
        (data / "b8:241").write_text("")

    worker = threading.Thread(target=coldplug)
    started = time.monotonic()
    worker.start()
    assert probe.wait_for_udev(["sdz"], timeout=10) is True
    worker.join()
    assert 0.5 <= time.monotonic() - started < 5
    assert calls and calls[-1][:2] == ["udevadm", "settle"]


def test_probe_gives_up_waiting_for_udev_after_the_timeout(udev):
    data, _ = udev
    (data / "b8:240").write_text("")
    started = time.monotonic()
    assert probe.wait_for_udev(["sdz"], timeout=0.4) is False
    assert time.monotonic() - started < 3


def test_probe_does_not_wait_without_a_udev_daemon(monkeypatch, tmp_path):
    """The live probe (this machine's /sys) with no udev daemon reads sysfs and blkid at once."""
    monkeypatch.setattr(probe, "UDEV_CONTROL", tmp_path / "no-udev")
    monkeypatch.setattr(probe, "wait_for_udev", lambda names: pytest.fail("waited for udev"))
    disks = probe.probe_disks()
    assert all(disk.path.startswith("/dev/") and disk.size > 0 for disk in disks)
