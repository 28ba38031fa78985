"""Install 4.5 → add VMs → upgrade to 5.0 → reinstall, on a real loop disk, checked with
independent tools (sgdisk, fsck.vfat, e2fsck, grub-editenv, debugfs, mtools)."""

from __future__ import annotations

import json
from pathlib import Path

from diskhelpers import (
    add_vms,
    check_disk_tools,
    engine_installer,
    grubenv,
    marker,
    mounted,
    part,
    slot_options,
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
    assert "VERSION=4.5" in slot_release(disk, "A")
    assert slot_options(disk, "A") == {"engine_args": "console=ttyS0", "engine_keymap": "de"}
    with mounted(part(disk, 5), readonly=True) as root:
        config = json.loads((root / "engine/config.json").read_text())
        assert config["keyboard"] == "de" and config["kernel_args"] == ["console=ttyS0"]
        assert (config["installed_version"], config["installed_build"]) == ("4.5", "45")
        logs = list((root / "engine/logs").iterdir())
        assert logs and "[write-slot]" in logs[0].read_text()
        assert not (root / "vms").exists()

    # 2. VMs appear on storage; detection sees an upgradeable 4.5 with three VMs.
    add_vms(disk, VMS)
    before = tree_hashes(disk)
    proc = engine_installer("--source", str(payloads["5.0"]), "detect", "--json", "--disk", disk)
    assert proc.returncode == 0, proc.stderr
    [found] = json.loads(proc.stdout)
    assert (found["state"], found["version"], found["active_slot"]) == ("upgradeable", "4.5", "A")
    assert sorted(vm["name"] for vm in found["vms"]) == ["build", "desk", "web"]

    # 3. Upgrade to 5.0 through the library, as the text UI does (action auto → upgrade), with
    #    another keyboard and kernel argument than the install had: both apply to slot B.
    events = []
    plan = Plan(
        action=Action.AUTO,
        target=disk,
        eula_accepted=True,
        lab_override=True,
        keyboard="us",
        kernel_args=["quiet"],
    )
    result = run_plan(plan, load_manifest(payloads["5.0"]), events.append)
    assert (result.action, result.version, result.slot, result.previous_version) == (
        "upgrade",
        "5.0",
        "B",
        "4.5",
    )
    assert sorted(vm.name for vm in result.report.vms_needing_pv_upgrade) == ["build", "desk"]
    phases = [e.phase for e in events if e.step and e.message]
    assert phases == [
        "write-slot",
        "verify-slot",
        "slot-options",
        "marker",
        "bootenv",
        "marker",
        "config",
        "save-report",
    ]
    last_write = [e for e in events if e.phase == "write-slot" and e.total > 1][-1]
    assert last_write.done == last_write.total == load_manifest(payloads["5.0"]).root_image.size
    assert tree_hashes(disk) == before  # VMs byte-identical
    check_disk_tools(disk)
    env = grubenv(disk, tmp_path)
    assert (env["engine_active"], env["engine_trial"], env["engine_tries"]) == ("A", "B", "3")
    mark = marker(disk)
    assert (mark["version"], mark["build"], mark["slot"]) == ("5.0", "50", "B")
    assert mark["slots"]["A"]["version"] == "4.5" and mark["slots"]["B"]["version"] == "5.0"
    assert "VERSION=4.5" in slot_release(disk, "A")  # the fallback is untouched
    assert "VERSION=5.0" in slot_release(disk, "B")
    assert slot_options(disk, "B") == {"engine_args": "quiet", "engine_keymap": "us"}
    assert slot_options(disk, "A") == {"engine_args": "console=ttyS0", "engine_keymap": "de"}
    with mounted(part(disk, 5), readonly=True) as root:
        config = json.loads((root / "engine/config.json").read_text())
        assert (config["keyboard"], config["kernel_args"]) == ("us", ["quiet"])
        assert (config["installed_version"], config["previous_version"]) == ("5.0", "4.5")
        [report] = (root / "engine/reports").glob("*-upgrade.json")
        saved = json.loads(report.read_text())
        assert saved["vms_needing_pv_upgrade"] == ["build", "desk"]
        assert (saved["from_version"], saved["to_version"]) == ("4.5", "5.0")
    proc = engine_installer("--source", str(payloads["5.0"]), "detect", "--json", "--disk", disk)
    [found] = json.loads(proc.stdout)
    # Slot B is on trial (it marks itself good when it boots); slot A stays the fallback.
    assert (found["state"], found["version"]) == ("same-version", "5.0")
    assert (found["trial_slot"], found["active_slot"]) == ("B", "A")

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
    assert slot_options(disk, "A")["engine_keymap"] == "us"
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
    assert f"install: Engine 5.0 (build 50) on {disk} " in proc.stdout
    assert "dry run: nothing is written" in proc.stdout
    for title in (
        f"Step 1 of 12: Partitioning {disk}",
        "Writing Engine 5.0 (build 50) into slot A",
        "Verifying slot A",
        "Installing the boot loader (BIOS and UEFI)",
        "Step 12 of 12: Saving the installation report",
    ):
        assert title in proc.stdout
    assert device_sha256(disk) == before


def test_install_from_an_engine_iso_read_in_place(make_loop, payloads, tmp_path):
    """source may be an Engine ISO file: read in place (pycdlib finds the root image's bytes;
    no mount, no loop device), dry run first, then the real install; an ISO whose manifest was
    edited after the build (SHA256SUMS no longer matches) is refused before anything is
    written."""
    import shutil

    from diskhelpers import device_sha256, run

    from tests.usb_helpers import write_sums

    tree = tmp_path / "tree"
    tree.mkdir()
    shutil.copytree(payloads["5.0"], tree / "engine")
    write_sums(tree)
    iso = tmp_path / "engine-5.0.iso"
    run(["xorriso", "-as", "mkisofs", "-R", "-J", "-o", str(iso), str(tree)])
    disk = make_loop(720 * 1024 * 1024)
    before = device_sha256(disk)
    answers = write_answers(tmp_path / "a.toml", disk, iso)
    proc = engine_installer("--answers", str(answers), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "install: Engine 5.0 (build 50)" in proc.stdout
    assert device_sha256(disk) == before

    def ours() -> list[str]:  # other engineers' runs mount things on this machine too
        lines = Path("/proc/self/mounts").read_text().splitlines()
        return [line for line in lines if disk in line or str(tmp_path) in line]

    mounts = ours()
    proc = engine_installer("--answers", str(answers))
    assert proc.returncode == 0, proc.stderr
    assert f"Engine 5.0 build 50 installed on {disk}, slot A" in proc.stdout
    assert "VERSION=5.0" in slot_release(disk, "A")
    assert ours() == mounts == []  # nothing mounted, nothing left mounted

    # The manifest edited after the build: refused, nothing written.
    manifest = tree / "engine" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"build": "50"', '"build": "51"'))
    tampered = tmp_path / "tampered.iso"
    run(["xorriso", "-as", "mkisofs", "-R", "-J", "-o", str(tampered), str(tree)])
    before = device_sha256(disk)
    answers = write_answers(tmp_path / "b.toml", disk, tampered, action="reinstall")
    proc = engine_installer("--answers", str(answers))
    assert proc.returncode == 2 and "SHA256SUMS" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert device_sha256(disk) == before
