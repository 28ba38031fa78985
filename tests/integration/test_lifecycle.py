"""Install 4.5 → add VMs → upgrade to 5.0 → reinstall, on a real loop disk, checked with
independent tools (sgdisk, fsck.vfat, e2fsck, grub-editenv, debugfs, mtools)."""

from __future__ import annotations

import json

from diskhelpers import (
    add_vms,
    check_disk_tools,
    engine_installer,
    grubenv,
    marker,
    mounted,
    part,
    slot_release,
    tree_hashes,
    write_answers,
)

from engine_installer.install.plan import Action, Plan
from engine_installer.install.runner import run_plan
from engine_installer.ondisk.payload import load_manifest

VMS = {"web": ("shared", "4.5"), "build": ("custom", "4.5"), "desk": ("local", "4.5")}


def test_install_upgrade_reinstall(make_loop, payloads, tmp_path, log_dir):
    disk = make_loop()

    # 1. Install 4.5 with the real console script, from an answer file.
    answers = write_answers(
        tmp_path / "install.toml",
        disk,
        payloads["4.5"],
        action="auto",
        keyboard="de",
        kernel_args=["console=ttyS0"],
    )
    proc = engine_installer("--answers", str(answers))
    assert proc.returncode == 0, proc.stderr
    assert f"Engine 4.5 build 45 installed on {disk}, slot A" in proc.stdout
    check_disk_tools(disk)
    assert grubenv(disk, tmp_path)["engine_active"] == "A"
    mark = marker(disk)
    assert (mark["product"], mark["version"], mark["build"], mark["slot"]) == (
        "Engine",
        "4.5",
        "45",
        "A",
    )
    assert mark["complete"] is True and mark["slots"]["A"]["version"] == "4.5"
    assert slot_release(disk, "A") == "ENGINE 4.5 build 45"
    with mounted(part(disk, 5), readonly=True) as root:
        config = json.loads((root / "engine/config.json").read_text())
        assert config["keyboard"] == "de" and config["kernel_args"] == ["console=ttyS0"]
        logs = list((root / "engine/logs").iterdir())
        assert logs and "write-slot" in logs[0].read_text()
        assert not (root / "vms").exists()

    # 2. VMs appear on storage; detection sees an upgradeable 4.5 with three VMs.
    add_vms(disk, VMS)
    before = tree_hashes(disk)
    proc = engine_installer("--source", str(payloads["5.0"]), "detect", "--json", "--disk", disk)
    assert proc.returncode == 0, proc.stderr
    [found] = json.loads(proc.stdout)
    assert (found["state"], found["version"], found["active_slot"]) == ("upgradeable", "4.5", "A")
    assert sorted(vm["name"] for vm in found["vms"]) == ["build", "desk", "web"]

    # 3. Upgrade to 5.0 through the library, as the text UI does (action auto → upgrade).
    events = []
    plan = Plan(action=Action.AUTO, target=disk, eula_accepted=True, keyboard="de")
    result = run_plan(plan, load_manifest(payloads["5.0"]), events.append)
    assert (result.action, result.version, result.slot, result.previous_version) == (
        "upgrade",
        "5.0",
        "B",
        "4.5",
    )
    assert sorted(vm.name for vm in result.vms_needing_pv_upgrade) == ["build", "desk"]
    phases = [e.phase for e in events]
    for phase in ("verify-payload", "write-slot", "verify-slot", "bootenv", "marker", "done"):
        assert phase in phases
    last_write = [e for e in events if e.phase == "write-slot" and e.total > 1][-1]
    assert last_write.done == last_write.total == load_manifest(payloads["5.0"]).root_image.size
    assert tree_hashes(disk) == before  # VMs byte-identical
    check_disk_tools(disk)
    env = grubenv(disk, tmp_path)
    assert (env["engine_active"], env["engine_trial"], env["engine_tries"]) == ("A", "B", "3")
    mark = marker(disk)
    assert (mark["version"], mark["build"], mark["slot"]) == ("5.0", "50", "B")
    assert mark["slots"]["A"]["version"] == "4.5" and mark["slots"]["B"]["version"] == "5.0"
    assert slot_release(disk, "A") == "ENGINE 4.5 build 45"  # the fallback is untouched
    assert slot_release(disk, "B") == "ENGINE 5.0 build 50"
    with mounted(part(disk, 5), readonly=True) as root:
        assert json.loads((root / "engine/config.json").read_text())["keyboard"] == "de"
    proc = engine_installer("--source", str(payloads["5.0"]), "detect", "--json", "--disk", disk)
    [found] = json.loads(proc.stdout)
    assert (found["state"], found["version"], found["active_slot"]) == ("same-version", "5.0", "B")

    # 4. Reinstall 5.0: everything wiped, slot A, empty storage.
    answers = write_answers(tmp_path / "reinstall.toml", disk, payloads["5.0"], action="reinstall")
    proc = engine_installer("--answers", str(answers))
    assert proc.returncode == 0, proc.stderr
    assert f"Engine 5.0 build 50 reinstalled on {disk}, slot A" in proc.stdout
    check_disk_tools(disk)
    env = grubenv(disk, tmp_path)
    assert env["engine_active"] == "A" and env.get("engine_trial", "") == ""
    mark = marker(disk)
    assert (mark["version"], mark["slot"], list(mark["slots"])) == ("5.0", "A", ["A"])
    with mounted(part(disk, 5), readonly=True) as root:
        assert not (root / "vms").exists()
        assert json.loads((root / "engine/config.json").read_text())["keyboard"] == "us"
    assert list(log_dir.iterdir())  # the live-side log exists too


def test_dry_run_touches_nothing(make_loop, payloads, tmp_path):
    from diskhelpers import device_sha256

    disk = make_loop(720 * 1024 * 1024)
    before = device_sha256(disk)
    # A stable link (as under /dev/disk/by-id/) is resolved to the disk it names.
    link = tmp_path / "ata-LAPTOP_SSD_1234"
    link.symlink_to(disk)
    answers = write_answers(tmp_path / "a.toml", str(link), payloads["5.0"])
    proc = engine_installer("--answers", str(answers), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert f"dry run: install Engine 5.0 (build 50) on {disk} " in proc.stdout
    for kind in ("partition", "format", "write-slot", "verify-slot", "bootloader", "bootenv"):
        assert kind in proc.stdout
    assert device_sha256(disk) == before


def test_dry_run_from_an_engine_iso(make_loop, payloads, tmp_path):
    """source may be an Engine ISO file: read without the kernel's iso9660 if need be."""
    from diskhelpers import device_sha256, run

    tree = tmp_path / "tree"
    tree.mkdir()
    import shutil

    shutil.copytree(payloads["5.0"], tree / "engine")
    iso = tmp_path / "engine-5.0.iso"
    run(["xorriso", "-as", "mkisofs", "-R", "-J", "-o", str(iso), str(tree)])
    disk = make_loop(720 * 1024 * 1024)
    before = device_sha256(disk)
    answers = write_answers(tmp_path / "a.toml", disk, iso)
    proc = engine_installer("--answers", str(answers), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "dry run: install Engine 5.0 (build 50)" in proc.stdout
    assert device_sha256(disk) == before
