"""engine-installer --answers --report URL on a real loop disk: the report reaches the lab
server (engine-iso netboot --serve's HTTP side); with nobody listening it is kept on the
installed disk; a refused install reports the error and leaves the disk untouched."""

from __future__ import annotations

import json
import socket

from diskhelpers import add_vms, device_sha256, engine_installer, mounted, part, write_answers

from engine_installer.iso.net.serve import LabServer


def lab_server(directory) -> LabServer:
    return LabServer(directory, bind="127.0.0.1", port=0, tftp_port=None, say=lambda _m: None)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_report_arrives_at_the_lab_server(make_loop, payloads, tmp_path):
    disk = make_loop()
    answers = write_answers(tmp_path / "a.toml", disk, payloads["4.5"], action="install")
    assert engine_installer("--answers", str(answers)).returncode == 0
    add_vms(disk, {"web": ("shared", "4.5"), "desk": ("local", "4.5")})
    export = tmp_path / "export"
    export.mkdir()
    with lab_server(export) as srv:
        upgrade = write_answers(tmp_path / "u.toml", disk, payloads["5.0"], action="upgrade")
        url = f"http://127.0.0.1:{srv.port}/reports/"
        proc = engine_installer("--answers", str(upgrade), "--report", url)
    assert proc.returncode == 0, proc.stderr
    assert f"Install report sent to {url}." in proc.stdout
    (sent,) = (export / "reports").glob("*.json")
    report = json.loads(sent.read_text())
    assert report["status"] == "installed" and report["error"] == ""
    assert report["medium"] == "Engine 5.0 (build 50)"
    result = report["result"]
    assert (result["action"], result["version"], result["build"], result["slot"]) == (
        "upgrade", "5.0", "50", "B",
    )  # fmt: skip
    assert result["disk"] == disk and result["previous_version"] == "4.5"
    assert result["report"]["vms_needing_pv_upgrade"] == ["desk"]  # the upgrade report
    assert result["report_path"].endswith("-upgrade.json")
    assert set(report["machine"]) == {"serial", "vendor", "model", "mac", "address"}
    with mounted(part(disk, 5), readonly=True) as root:
        # Delivered: only the runner's own upgrade report is on the disk, no network copy.
        assert not list((root / "engine/reports").glob("*-network-report.json"))


def test_report_kept_on_the_disk_when_nobody_answers(make_loop, payloads, tmp_path):
    disk = make_loop()
    answers = write_answers(tmp_path / "a.toml", disk, payloads["5.0"], action="install")
    url = f"http://127.0.0.1:{closed_port()}/reports/"
    proc = engine_installer("--answers", str(answers), "--report", url)
    assert proc.returncode == 0, proc.stderr
    assert "Could not send the install report" in proc.stdout
    assert "refused the connection" in proc.stdout
    assert "kept on the installed disk (storage partition, engine/reports/" in proc.stdout
    with mounted(part(disk, 5), readonly=True) as root:
        (kept,) = (root / "engine/reports").glob("*-network-report.json")
        report = json.loads(kept.read_text())
    assert report["status"] == "installed" and report["result"]["version"] == "5.0"


def test_refused_install_reports_the_error_and_touches_nothing(make_loop, payloads, tmp_path):
    disk = make_loop()
    answers = write_answers(tmp_path / "a.toml", disk, payloads["5.0"], action="upgrade")
    before = device_sha256(disk)
    export = tmp_path / "export"
    export.mkdir()
    with lab_server(export) as srv:
        url = f"http://127.0.0.1:{srv.port}/reports/"
        proc = engine_installer("--answers", str(answers), "--report", url)
    assert proc.returncode != 0
    assert "holds no Engine to upgrade" in proc.stderr
    (sent,) = (export / "reports").glob("*.json")
    report = json.loads(sent.read_text())
    assert report["status"] == "failed" and report["result"] is None
    assert "holds no Engine to upgrade" in report["error"]
    assert device_sha256(disk) == before
