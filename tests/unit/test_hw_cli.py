"""engine-installer hw-check / hw-capture, run as a technician runs them (a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from engine_installer.hw.match import profile_matches
from engine_installer.hw.profiles import ENV_VAR, load_profile, load_profiles
from engine_installer.hw.synth import snapshot_for_profile

REPO = Path(__file__).resolve().parents[2]
BY_ID = {p.id: p for p in load_profiles(REPO / "hw-profiles")}


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env_clean = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    return subprocess.run(
        [sys.executable, "-m", "engine_installer", *args],
        cwd=cwd,
        env=dict(env_clean, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_hw_check_json_on_a_recorded_machine(tmp_path):
    snap = tmp_path / "t480.json"
    snapshot_for_profile(BY_ID["lenovo-thinkpad-t480"]).save(snap)
    done = run("--profile", str(snap), "hw-check", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["profile_name"] == "Lenovo ThinkPad T480"
    assert report["verdict"] == "pass" and report["kernel_args"] == ["i915.enable_psr=0"]
    assert {i["status"] for i in report["items"]} == {"pass"}
    assert done.stderr == ""


def test_hw_check_fail_exits_1_and_prints_the_fix(tmp_path):
    snap = tmp_path / "e7450.json"
    snapshot_for_profile(BY_ID["dell-latitude-e7450"], vt_x=False).save(snap)
    done = run("hw-check", "--profile", str(snap))  # --profile after the sub-command works too
    assert done.returncode == 1
    assert "Dell Inc. Latitude E7450: FAIL (profile dell-latitude-e7450)" in done.stdout
    assert "FAIL  vt-x        VT-x is disabled: enable Intel Virtualization Technology" in (
        done.stdout
    )


def test_hw_check_warn_exits_0(tmp_path):
    snap = tmp_path / "x230.json"
    snapshot_for_profile(BY_ID["lenovo-thinkpad-x230"], memory_gib=8).save(snap)
    done = run("--profile", str(snap), "hw-check")
    assert done.returncode == 0 and "WARN  memory" in done.stdout


def test_hw_check_missing_snapshot_is_one_line_error(tmp_path):
    done = run("--profile", str(tmp_path / "nope.json"), "hw-check")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: machine snapshot") and done.stderr.count("\n") == 1


def test_hw_capture_writes_a_draft_that_validates_matches_and_replays(tmp_path):
    recorded = tmp_path / "field.json"
    snap = snapshot_for_profile(BY_ID["hp-elitebook-840-g10"])
    snap.dmi["product_name"] = "HP EliteBook 840 14 inch G11 Notebook PC"  # a new model
    snap.save(recorded)
    out = tmp_path / "hp-g11.toml"
    done = run("--profile", str(recorded), "hw-capture", "--out", str(out))
    assert done.returncode == 0, done.stderr
    replay = tmp_path / "hp-g11.snapshot.json"
    assert f"profile draft: {out}" in done.stdout and f"machine snapshot: {replay}" in done.stdout
    draft = load_profile(out)
    assert draft.name == "HP EliteBook 840 14 inch G11 Notebook PC"
    assert draft.match["product_name"] == ["HP EliteBook 840 14 inch G11 Notebook PC"]
    assert profile_matches(draft, snap) and not profile_matches(draft, snapshot_for_profile(
        BY_ID["hp-elitebook-840-g10"]))  # fmt: skip
    assert draft.storage_controllers == ["nvme"]
    assert draft.sample == {k: v for k, v in snap.dmi.items()} | {"cpu_model": snap.cpu_model}
    # The replayable snapshot is the machine, and it checks as an unknown model (warn).
    checked = run("--profile", str(replay), "hw-check", "--json")
    assert checked.returncode == 0 and json.loads(checked.stdout)["profile_name"] == ""
    # Dropped into a profiles directory, the draft recognises the machine.
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "hp-elitebook-840-g11.toml").write_text(out.read_text())
    done = subprocess.run(
        [sys.executable, "-m", "engine_installer", "--profile", str(replay), "hw-check", "--json"],
        cwd=REPO,
        env=dict(os.environ, **{ENV_VAR: str(tmp_path / "profiles")}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(done.stdout)["profile_id"] == "hp-elitebook-840-g11"
    # A second capture refuses to overwrite the draft.
    again = run("--profile", str(recorded), "hw-capture", "--out", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr


def test_hw_capture_of_a_lenovo_matches_the_model_not_the_machine_type(tmp_path):
    recorded = tmp_path / "x1.json"
    snapshot_for_profile(BY_ID["lenovo-thinkpad-x1-carbon-gen11"]).save(recorded)
    out = tmp_path / "x1.toml"
    assert run("--profile", str(recorded), "hw-capture", "--out", str(out)).returncode == 0
    draft = load_profile(out)
    assert draft.name == "Lenovo ThinkPad X1 Carbon Gen 11"
    assert "product_name" not in draft.match
    assert draft.match["product_version"] == ["ThinkPad X1 Carbon Gen 11"]


def test_hw_capture_live_machine(tmp_path):
    done = run("hw-capture", "--out", str(tmp_path / "me.toml"))
    assert done.returncode == 0, done.stderr
    load_profile(tmp_path / "me.toml")
    assert (tmp_path / "me.snapshot.json").exists()
