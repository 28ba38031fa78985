"""The signed UEFI boot chain on a real loop disk: install puts shim + signed GRUB in EFI/debian
and EFI/BOOT; an upgrade leaves it alone unless the payload's chain is newer, and then replaces
it so that a power cut after any step leaves a chain the firmware can start.

Checked with independent readers (mtools, sbverify, fsck.vfat)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from diskhelpers import (
    check_disk_tools,
    engine_installer,
    esp_file,
    grubenv,
    part,
    run,
)

from engine_installer.base.errors import UserError
from engine_installer.disks import esp
from engine_installer.install.plan import Action, Plan
from engine_installer.install.runner import run_plan
from engine_installer.iso.signed_chain import host_chain
from engine_installer.ondisk.bootchain import (
    RECORD_PATH,
    STUB_PATH,
    chain_paths,
    stub_config,
    vendor_paths,
)
from engine_installer.ondisk.payload import MANIFEST_NAME, load_manifest, write_manifest
from qemu import loops

MTOOLS_ENV = dict(os.environ, MTOOLS_SKIP_CHECK="1")


def with_chain(payload: Path, out: Path, versions: dict[str, str] | None = None) -> Path:
    """A copy of a test payload that carries the host's signed chain (optionally claiming
    other package versions, to stand for an older or newer chain)."""
    shutil.copytree(payload, out)
    chain = host_chain()
    data = json.loads((out / MANIFEST_NAME).read_text())
    artifacts = {name: entry["path"] for name, entry in data.pop("artifacts").items()}
    (out / "efi").mkdir()
    for name, source in chain.files().items():
        shutil.copyfile(source, out / "efi" / f"{name}.efi")
        artifacts[name] = f"efi/{name}.efi"
    data["boot_chain"] = versions or chain.versions
    data["secure_boot"] = True
    write_manifest(out, data, artifacts)
    return out


def esp_files(disk: str) -> dict[str, bytes | None]:
    return {path: esp_file(disk, path) for _a, path in chain_paths()} | {
        STUB_PATH: esp_file(disk, STUB_PATH),
        RECORD_PATH: esp_file(disk, RECORD_PATH),
    }


def clusters(disk: str, path: str) -> str:
    """Where the file lies on the FAT (mshowfat): the same clusters = not rewritten."""
    return run(["mshowfat", "-i", part(disk, 2), f"::{path}"], env=MTOOLS_ENV).stdout


def assert_chain(disk: str, versions: dict[str, str]) -> None:
    chain = host_chain()
    files = esp_files(disk)
    for artifact, path in chain_paths():
        assert files[path] == chain.files()[artifact].read_bytes(), path
    assert files[STUB_PATH] == stub_config().encode()
    assert json.loads(files[RECORD_PATH] or b"{}") == versions


@pytest.fixture
def chain_payloads(payloads, tmp_path) -> dict[str, Path]:
    v = host_chain().versions
    return {
        "4.5": with_chain(payloads["4.5"], tmp_path / "p45"),
        "5.0": with_chain(payloads["5.0"], tmp_path / "p50"),
        "5.1-newer": with_chain(
            payloads["5.1"], tmp_path / "p51", {"shim": v["shim"], "grub": v["grub"] + "+1"}
        ),
        "5.1-older": with_chain(
            payloads["5.1"], tmp_path / "p51o", {"shim": v["shim"], "grub": "1+2.06+1"}
        ),
    }


def upgrade(disk: str, payload: Path):
    plan = Plan(action=Action.UPGRADE, target=disk, eula_accepted=True, lab_override=True)
    return run_plan(plan, load_manifest(payload))


def install(disk: str, payload: Path):
    return run_plan(Plan(action=Action.INSTALL, target=disk, eula_accepted=True, lab_override=True),
                    load_manifest(payload))  # fmt: skip


def test_install_puts_the_signed_chain_in_both_places(make_loop, chain_payloads, tmp_path):
    disk = make_loop()
    install(disk, chain_payloads["4.5"])
    assert_chain(disk, host_chain().versions)
    bootx64 = tmp_path / "BOOTX64.EFI"
    bootx64.write_bytes(esp_file(disk, "EFI/BOOT/BOOTX64.EFI") or b"")
    listing = run(["sbverify", "--list", str(bootx64)]).stdout
    assert "Microsoft Corporation UEFI CA 2011" in listing
    # The signed GRUB has its modules built in: no x86_64-efi module directory on the ESP.
    listing = run(["mdir", "-b", "-i", part(disk, 2), "::/boot/grub"], env=MTOOLS_ENV).stdout
    assert "i386-pc" in listing and "x86_64-efi" not in listing
    check_disk_tools(disk)


def test_upgrade_leaves_a_current_chain_alone_and_replaces_only_a_newer_one(
    make_loop, chain_payloads
):
    disk = make_loop()
    install(disk, chain_payloads["4.5"])
    where = {path: clusters(disk, path) for _a, path in chain_paths()}
    upgrade(disk, chain_payloads["5.0"])  # same chain versions
    assert {path: clusters(disk, path) for _a, path in chain_paths()} == where
    assert_chain(disk, host_chain().versions)
    newer = load_manifest(chain_payloads["5.1-newer"]).boot_chain
    upgrade(disk, chain_payloads["5.1-newer"])
    assert_chain(disk, newer)
    where = {path: clusters(disk, path) for _a, path in chain_paths()}
    # An older chain never replaces a newer one, whatever the Engine version.
    upgrade(disk, chain_payloads["5.1-older"])
    assert {path: clusters(disk, path) for _a, path in chain_paths()} == where
    assert_chain(disk, newer)
    check_disk_tools(disk)


def test_upgrade_of_an_engine_from_before_secure_boot_installs_the_chain(
    make_loop, payloads, chain_payloads, tmp_path
):
    disk = make_loop()
    install(disk, payloads["4.5"])  # no chain: GRUB built by the installer, no record
    legacy = esp_file(disk, "EFI/BOOT/BOOTX64.EFI")
    assert legacy and esp_file(disk, RECORD_PATH) is None
    dry = engine_installer(
        "--dry-run", "--answers", str(answers(tmp_path, disk, chain_payloads["5.0"]))
    )
    assert "Step 5 of 9: Updating the signed boot loader (Secure Boot)" in dry.stdout, dry
    upgrade(disk, chain_payloads["5.0"])
    assert_chain(disk, host_chain().versions)
    check_disk_tools(disk)


def answers(tmp: Path, disk: str, payload: Path) -> Path:
    path = tmp / "upgrade.toml"
    path.write_text(f'[install]\naction = "upgrade"\ntarget = "{disk}"\neula = "accepted"\n'
                    f'lab_override = true\n[source]\npath = "{payload}"\n')  # fmt: skip
    return path


def test_power_cut_at_any_step_of_the_chain_update_leaves_a_startable_esp(
    payloads, chain_payloads, tmp_path, monkeypatch
):
    """Upgrade a pre-Secure-Boot disk and stop the chain update before each rename and
    before the version record (as a power cut would): the removable path always starts
    something whole. Either the old GRUB is still BOOTX64.EFI, or shim is, with the signed
    GRUB and the stub already beside it; once EFI/BOOT changes, EFI/debian (where the firmware
    boot entry points) holds the whole new chain. The boot switch never happened, so the old
    slot is still the one that boots; running the upgrade again finishes the job."""
    image = tmp_path / "legacy.img"
    with open(image, "wb") as handle:
        handle.truncate(int(1.2 * 1024**3))
    with loops.loop_device(image, loops.INTEGRATION, partitions=False) as device:
        install(device, payloads["4.5"])
        old_bootx64 = esp_file(device, "EFI/BOOT/BOOTX64.EFI")
    chain = host_chain()
    # The stub's and every chain file's rename, then the version record: a cut before each.
    targets = {f"::{p}" for p in (STUB_PATH, *(p for _a, p in chain_paths()))}
    steps = len(targets) + 1
    vendor_steps = 1 + len(vendor_paths())
    seen_new = False
    real_mtools = esp.run_mtools
    for cut in range(steps):
        copy = tmp_path / f"cut-{cut}.img"
        run(["cp", "--sparse=always", str(image), str(copy)])
        done = []

        def cut_after(args, check=True, done=done, cut=cut, **kwargs):
            renames = args[0] == "mmove" and args[-1] in targets
            if renames or (args[0] == "mcopy" and args[-1] == f"::{RECORD_PATH}"):
                if len(done) == cut:
                    raise UserError("power cut (simulated)")
                done.append(args[-1])
            return real_mtools(args, check, **kwargs)

        monkeypatch.setattr(esp, "run_mtools", cut_after)
        try:
            with loops.loop_device(copy, loops.INTEGRATION) as device:
                with pytest.raises(UserError, match="power cut"):
                    upgrade(device, chain_payloads["5.0"])
                monkeypatch.setattr(esp, "run_mtools", real_mtools)
                bootx64 = esp_file(device, "EFI/BOOT/BOOTX64.EFI")
                if bootx64 == old_bootx64:
                    assert esp_file(device, "boot/grub/x86_64-efi/normal.mod"), "old GRUB's modules"
                else:
                    seen_new = True
                    assert bootx64 == chain.shim.read_bytes(), f"cut {cut}: BOOTX64.EFI torn"
                    assert esp_file(device, "EFI/BOOT/grubx64.efi") == chain.grub.read_bytes()
                    assert esp_file(device, STUB_PATH) == stub_config().encode()
                if cut >= vendor_steps:  # EFI/debian is whole and new
                    for artifact, path in vendor_paths():
                        assert esp_file(device, path) == chain.files()[artifact].read_bytes(), path
                env = grubenv(device, tmp_path)
                assert env["engine_active"] == "A" and not env.get("engine_trial"), env
                fsck = run(["fsck.vfat", "-n", part(device, 2)], check=False)
                assert fsck.returncode == 0, fsck.stdout
                # Running the upgrade again finishes the job.
                upgrade(device, chain_payloads["5.0"])
                assert_chain(device, chain.versions)
        finally:
            monkeypatch.setattr(esp, "run_mtools", real_mtools)
            copy.unlink()
    assert seen_new, "no cut landed after shim became BOOTX64.EFI"


def test_chain_versions_compare_the_debian_way():
    from engine_installer.ondisk.bootchain import chain_is_newer

    base = {"shim": "1.51~1+deb12u1+16.1-2~deb12u1", "grub": "1+2.06+13+deb12u2"}
    assert chain_is_newer(base, {})  # nothing recorded: an Engine from before Secure Boot
    assert not chain_is_newer(base, base)
    assert chain_is_newer(dict(base, grub="1+2.06+13+deb12u10"), base)  # u10 > u2, as dpkg says
    assert not chain_is_newer(dict(base, grub="1+2.06+13+deb12u1"), base)
    # Newer shim but older GRUB: never downgrade a component, keep what is there.
    assert not chain_is_newer({"shim": "1.52", "grub": "1+2.06+13+deb12u1"}, base)
    assert not chain_is_newer({}, base)  # the payload has no chain to offer
    subprocess.run(["dpkg", "--version"], check=True, capture_output=True)
