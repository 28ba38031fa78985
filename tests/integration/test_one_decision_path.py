"""The dry run is the real run without the writes: for install, upgrade, reinstall and a
confirmed downgrade, the "Step i of N" lines of `--dry-run` equal those of the real run, in
order, on real loop disks; the report the real run saves lists the same VMs it prints."""

from __future__ import annotations

import json
import re

from diskhelpers import add_vms, device_sha256, engine_installer, mounted, part, write_answers

STEP = re.compile(r"^Step \d+ of \d+: .*$", re.MULTILINE)
SIZE = 720 * 1024 * 1024


def steps(*answers_args: str) -> tuple[list[str], str]:
    proc = engine_installer("--answers", *answers_args)
    assert proc.returncode == 0, proc.stderr
    return STEP.findall(proc.stdout), proc.stdout


def dry_then_real(answers) -> str:
    disk_lines, _ = steps(str(answers), "--dry-run")
    real_lines, out = steps(str(answers))
    assert disk_lines and disk_lines == real_lines, (disk_lines, real_lines)
    return out


def test_dry_run_steps_equal_the_real_run(make_loop, payloads, tmp_path):
    disk = make_loop(SIZE)
    before = device_sha256(disk)
    answers = write_answers(tmp_path / "install.toml", disk, payloads["4.5"], action="install")
    assert steps(str(answers), "--dry-run")[0]
    assert device_sha256(disk) == before  # the dry run wrote nothing
    dry_then_real(answers)

    add_vms(
        disk,
        {
            "web": ("shared", "4.5", "4.5.2"),
            "build": ("custom", "4.5", "4.5.0"),
            "desk": ("local", "4.5", "5.0.0"),  # drivers already those of the medium
            "lab": ("local", "4.0", "4.0.7"),
        },
    )
    answers = write_answers(
        tmp_path / "upgrade.toml", disk, payloads["5.0"], keyboard="de", kernel_args=["quiet"]
    )
    out = dry_then_real(answers)
    # The report: local and custom VMs whose drivers are older than the medium's, exactly.
    assert "VMs needing a manual PV-driver upgrade" in out
    listed = re.findall(r"^  (\S+) \((?:local|custom), PV drivers", out, re.MULTILINE)
    assert listed == ["build", "lab"]
    with mounted(part(disk, 5), readonly=True) as root:
        [saved] = (root / "engine/reports").glob("*-upgrade.json")
        report = json.loads(saved.read_text())
    assert report["vms_needing_pv_upgrade"] == ["build", "lab"]
    assert report["vms_that_will_not_run"] == []
    assert (report["action"], report["from_version"], report["to_version"]) == (
        "upgrade",
        "4.5",
        "5.0",
    )

    answers = write_answers(tmp_path / "reinstall.toml", disk, payloads["5.0"], action="reinstall")
    dry_then_real(answers)


def test_confirmed_downgrade_is_called_a_downgrade_everywhere(make_loop, payloads, tmp_path):
    disk = make_loop(SIZE)
    answers = write_answers(tmp_path / "install.toml", disk, payloads["5.1"], action="install")
    steps(str(answers))
    add_vms(disk, {"render": ("custom", "5.1"), "notes": ("local", "4.5")})
    answers = write_answers(tmp_path / "down.toml", disk, payloads["5.0"], allow_downgrade=True)
    out = dry_then_real(answers)
    words = out.lower().replace("pv-driver upgrade", "")
    assert "downgrade" in words and "upgrade" not in words.replace("downgrade", ""), out
    assert "will not run on 5.0:\n  render (custom, published for 5.1)" in out
    with mounted(part(disk, 5), readonly=True) as root:
        [saved] = (root / "engine/reports").glob("*-downgrade.json")
        report = json.loads(saved.read_text())
    assert report["vms_that_will_not_run"] == ["render"]
    assert report["vms_needing_pv_upgrade"] == ["notes"]
