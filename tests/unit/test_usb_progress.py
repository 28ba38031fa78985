"""Progress maths (2 s rate window, time left), output styles, confirmation and result table."""

from __future__ import annotations

import io
import json

import pytest

from engine_installer.base.errors import UserError
from engine_installer.disks.blockcopy import align_up
from engine_installer.machine.snapshot import DiskInfo
from engine_installer.usb.cli import result_table
from engine_installer.usb.confirm import confirm_erase, human_size
from engine_installer.usb.progress import Progress, RateWindow, eta_seconds, format_eta
from engine_installer.usb.writer import StickResult

MB = 10**6


def test_rate_over_a_two_second_window() -> None:
    window = RateWindow(2.0)
    for tenth in range(0, 51):  # 5 s at 100 MB/s
        window.add(tenth / 10, tenth * 10 * MB)
    assert window.rate() == pytest.approx(100 * MB)
    for tenth in range(51, 81):  # then 3 s at 20 MB/s: the window forgets the fast part
        window.add(tenth / 10, 500 * MB + (tenth - 50) * 2 * MB)
    assert window.rate() == pytest.approx(20 * MB)
    span = window.samples[-1][0] - window.samples[0][0]
    assert 2.0 <= span <= 2.1 + 1e-9


def test_rate_edge_cases() -> None:
    window = RateWindow()
    assert window.rate() == 0.0
    window.add(1.0, 10)
    assert window.rate() == 0.0
    window.add(1.0, 20)  # same instant: no division by zero
    assert window.rate() == 0.0
    window.add(2.0, 5)  # the count went back (new phase): start over
    assert len(window.samples) == 1


def test_time_left() -> None:
    assert eta_seconds(0, 1000 * MB, 100 * MB) == pytest.approx(10)
    assert eta_seconds(500, 1000, 0) is None
    assert format_eta(None) == "--:--"
    assert format_eta(75.4) == "01:15"
    assert format_eta(3 * 3600 + 62) == "3:01:02"


def test_json_progress_is_one_object_per_line() -> None:
    out = io.StringIO()
    now = [0.0]
    progress = Progress(["/dev/sdb", "/dev/sdc"], json_lines=True, stream=out, clock=lambda: now[0])
    for step in range(21):
        now[0] = step * 0.1
        progress.update("/dev/sdb", "writing", step * 10 * MB, 200 * MB)
    progress.update("/dev/sdc", "failed", 0, 200 * MB, "gone")
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    sdb = [r for r in records if r["device"] == "/dev/sdb"]
    # Throttled to every 0.5 s, but the first and the last (100 %) always come out.
    assert sdb[0]["done"] == 0 and sdb[-1]["percent"] == 100.0
    assert [r["done"] for r in sdb] == [0, 50 * MB, 100 * MB, 150 * MB, 200 * MB]
    assert sdb[-1]["mb_per_s"] == pytest.approx(100.0)
    assert sdb[-1]["eta_s"] == 0.0
    assert records[-1] == {
        "device": "/dev/sdc",
        "phase": "failed",
        "done": 0,
        "total": 200 * MB,
        "percent": 0.0,
        "mb_per_s": 0.0,
        "eta_s": None,
        "message": "gone",
    }


def test_terminal_line() -> None:
    out = io.StringIO()
    now = [0.0]
    progress = Progress(["/dev/sdb"], stream=out, clock=lambda: now[0])
    progress.update("/dev/sdb", "writing", 0, 1000 * MB)
    now[0] = 2.0
    progress.update("/dev/sdb", "writing", 500 * MB, 1000 * MB)
    line = progress.states["/dev/sdb"].line()
    assert "writing" in line and "50.0%" in line and "250.0 MB/s" in line and "00:02 left" in line


def big_and_small() -> list[DiskInfo]:
    return [
        DiskInfo("/dev/sdb", 16 * 10**9, model="Cruzer", vendor="SanDisk", serial="S1", bus="usb"),
        DiskInfo("/dev/sdc", 256 * 10**9, model="Expansion", serial="S2", bus="usb"),
    ]


def test_confirmation_shows_model_serial_size_and_asks_twice_for_big() -> None:
    out = io.StringIO()
    answers = iter(["yes", "/dev/sdc"])
    confirm_erase(big_and_small(), "engine.iso", False, lambda _q: next(answers), out, True)
    text = out.getvalue()
    assert "SanDisk Cruzer" in text and "serial S1" in text and "16.0 GB" in text
    assert "warning: /dev/sdc is 256.0 GB" in text
    with pytest.raises(UserError, match="/dev/sdc not confirmed"):
        answers = iter(["yes", "sdb"])
        confirm_erase(big_and_small(), "x", False, lambda _q: next(answers), io.StringIO(), True)
    with pytest.raises(UserError, match="not confirmed: nothing was written"):
        confirm_erase(big_and_small(), "x", False, lambda _q: "no", io.StringIO(), True)
    with pytest.raises(UserError, match="pass --yes"):
        confirm_erase(big_and_small(), "x", False, lambda _q: "yes", io.StringIO(), False)
    confirm_erase(big_and_small(), "x", True, None, io.StringIO(), False)  # --yes: no question


def test_result_table_and_sizes() -> None:
    ok = StickResult("/dev/sdb", "Cruzer", "S1", 16 * 10**9, True, "written and verified")
    ok.image_bytes, ok.write_seconds, ok.verify_seconds = 100 * MB, 2.0, 1.0
    bad = StickResult("/dev/sdc", size=8 * 10**9, message="/dev/sdc failed while writing")
    table = result_table([ok, bad]).splitlines()
    assert table[0].split() == ["DEVICE", "MODEL", "SERIAL", "SIZE", "RESULT", "WRITE", "VERIFY"]
    assert table[1].split() == ["/dev/sdb", "Cruzer", "S1", "16.0", "GB", "ok"] + [
        "50",
        "MB/s",
        "100",
        "MB/s",
    ]
    assert "FAILED" in table[2]
    assert table[3] == "/dev/sdc: /dev/sdc failed while writing"
    assert human_size(1536) == "1536 B" and human_size(2 * 10**12) == "2.0 TB"
    assert align_up(2048, 4096) == 4096 and align_up(8192, 4096) == 8192
