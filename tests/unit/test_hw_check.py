"""hw-check verdicts on machines built from the profiles, healthy and misconfigured."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from engine_installer.hw.check import CheckItem, HwReport, check_machine
from engine_installer.hw.profiles import load_profiles
from engine_installer.hw.synth import snapshot_for_profile
from engine_installer.machine.snapshot import MachineSnapshot

REPO_PROFILES = Path(__file__).resolve().parents[2] / "hw-profiles"
BY_ID = {p.id: p for p in load_profiles(REPO_PROFILES)}


def check(snap: MachineSnapshot) -> HwReport:
    return check_machine(snap, REPO_PROFILES)


def item(report: HwReport, name: str) -> CheckItem:
    (found,) = [i for i in report.items if i.name == name]
    return found


@pytest.mark.parametrize("profile_id", sorted(BY_ID))
def test_healthy_machine_of_every_profile_passes(profile_id):
    profile = BY_ID[profile_id]
    report = check(snapshot_for_profile(profile))
    assert report.verdict == "pass", [i for i in report.items if i.status != "pass"]
    assert report.profile_name == profile.name and report.profile_id == profile_id
    assert report.kernel_args == [k.arg for k in profile.kernel_args]
    names = [i.name for i in report.items]
    assert names[:6] == ["model", "firmware", "vt-x", "ept", "vt-d", "memory"]
    assert "storage" in names and "disk" in names


def test_thinkpad_t480_report_reads_like_the_machine():
    report = check(snapshot_for_profile(BY_ID["lenovo-thinkpad-t480"]))
    assert report.model == "LENOVO ThinkPad T480 (20L5CTO1WW)"
    assert report.kernel_args == ["i915.enable_psr=0"]
    assert any("Thunderbolt" in issue for issue in report.known_issues)


@pytest.mark.parametrize(
    ("profile_id", "setting"),
    [
        ("dell-latitude-7490", "Virtualization Support > Virtualization"),
        ("hp-elitebook-840-g3", "Virtualization Technology (VTx)"),
        ("lenovo-thinkpad-x230", "Intel (R) Virtualization Technology"),
    ],
)
def test_vt_x_off_fails_and_names_the_vendor_setting(profile_id, setting):
    report = check(snapshot_for_profile(BY_ID[profile_id], vt_x=False))
    assert report.verdict == "fail"
    vt_x = item(report, "vt-x")
    assert vt_x.status == "fail"
    assert vt_x.message.startswith("VT-x is disabled: enable Intel Virtualization Technology")
    assert setting in vt_x.message
    assert item(report, "ept").status == "warn"  # cannot be seen until VT-x is on


def test_cpu_without_ept_fails():
    report = check(snapshot_for_profile(BY_ID["dell-latitude-e6420"], ept=False))
    assert item(report, "ept").status == "fail" and report.verdict == "fail"


def test_vt_d_off_fails_and_names_the_setting():
    report = check(snapshot_for_profile(BY_ID["hp-elitebook-8460p"], vt_d=False))
    vt_d = item(report, "vt-d")
    assert vt_d.status == "fail" and "Virtualization Technology Directed I/O (VTd)" in vt_d.message


@pytest.mark.parametrize("storage", ["vmd-no-driver", "vmd"])
def test_vmd_on_fails_with_the_dell_setting(storage):
    report = check(snapshot_for_profile(BY_ID["dell-latitude-5420"], storage=storage))
    st = item(report, "storage")
    assert report.verdict == "fail" and st.status == "fail"
    assert "Storage > SATA/NVMe Operation: AHCI/NVMe" in st.message
    assert "VMD" in st.message
    if storage == "vmd-no-driver":
        assert "Linux sees no disk" in st.message
        assert not [i for i in report.items if i.name == "disk"]


def test_vmd_on_lenovo_names_the_vmd_controller_setting():
    report = check(snapshot_for_profile(BY_ID["lenovo-thinkpad-t14-gen3-intel"], storage="vmd"))
    assert "Intel VMD controller" in item(report, "storage").message


def test_rst_remapped_nvme_fails():
    report = check(snapshot_for_profile(BY_ID["dell-latitude-7490"], storage="rst-remapped"))
    st = item(report, "storage")
    assert st.status == "fail"
    assert "hides 1 NVMe disk" in st.message and "SATA Operation: AHCI" in st.message


def test_sata_raid_with_visible_disk_warns():
    report = check(snapshot_for_profile(BY_ID["dell-latitude-e7450"], storage="raid"))
    assert item(report, "storage").status == "warn" and report.verdict == "warn"


def test_no_disk_at_all_fails():
    report = check(snapshot_for_profile(BY_ID["lenovo-thinkpad-t420"], storage="none"))
    assert item(report, "storage").status == "fail"
    assert "no internal disk found" in item(report, "storage").message


def test_usb_stick_is_not_an_internal_disk():
    snap = snapshot_for_profile(BY_ID["lenovo-thinkpad-t420"], storage="none")
    base = snapshot_for_profile(BY_ID["lenovo-thinkpad-t420"]).disks[0]
    snap.disks = [replace(base, path="/dev/sdb", bus="usb", removable=True)]
    assert item(check(snap), "storage").status == "fail"


def test_ide_compatibility_mode_warns_with_the_setting():
    snap = snapshot_for_profile(BY_ID["lenovo-thinkpad-t420"])
    snap.disks[0].controller = "ata_piix"
    st = item(check(snap), "storage")
    assert st.status == "warn" and "SATA Controller Mode Option: AHCI" in st.message


def test_too_little_ram_fails_and_some_ram_warns():
    profile = BY_ID["lenovo-thinkpad-x1-carbon-gen11"]  # soldered: 16 GiB minimum
    low = check(snapshot_for_profile(profile, memory_gib=8))
    assert item(low, "memory").status == "fail" and low.verdict == "fail"
    assert "needs at least 16 GiB" in item(low, "memory").message
    mid = check(snapshot_for_profile(profile, memory_gib=16))
    assert item(mid, "memory").status == "warn" and mid.verdict == "warn"


def test_usable_memory_a_little_under_installed_still_passes():
    snap = snapshot_for_profile(BY_ID["dell-latitude-e7440"])
    snap.memory_bytes = int(15.4 * 2**30)  # a 16 GiB laptop minus firmware and iGPU memory
    assert item(check(snap), "memory").status == "pass"


def test_small_disk_fails():
    report = check(snapshot_for_profile(BY_ID["hp-elitebook-840-g10"], disk_gb=128))
    disk = item(report, "disk")
    assert disk.status == "fail" and "256 GB" in disk.message


def test_legacy_boot_on_a_uefi_first_model_warns():
    report = check(snapshot_for_profile(BY_ID["dell-latitude-7490"], firmware="bios"))
    fw = item(report, "firmware")
    assert fw.status == "warn" and "Boot List Option: UEFI" in fw.message


def test_unknown_model_gets_a_warning_and_generic_checks():
    snap = snapshot_for_profile(BY_ID["dell-latitude-7490"])
    snap.dmi = {"sys_vendor": "Fujitsu", "product_name": "LIFEBOOK U7411"}
    report = check(snap)
    assert report.profile_name == "" and report.kernel_args == []
    assert item(report, "model").status == "warn"
    assert item(report, "model").message.startswith("unknown model (Fujitsu LIFEBOOK U7411)")
    assert "generic checks only" in item(report, "model").message
    assert report.verdict == "warn"
    snap.cpu_flags.remove("vmx")
    assert check(snap).verdict == "fail"


def test_amd_thinkpad_t14_gen3_is_not_taken_for_the_intel_model():
    snap = snapshot_for_profile(BY_ID["lenovo-thinkpad-t14-gen3-intel"])
    snap.cpu_model = "AMD Ryzen 5 PRO 6650U with Radeon Graphics"
    snap.cpu_flags = [f for f in snap.cpu_flags if f not in ("vmx", "ept")] + ["svm", "npt"]
    snap.dmi["product_name"] = "21CF0001US"
    report = check(snap)
    assert report.profile_name == ""
    assert item(report, "vt-x").status == "warn" and "AMD" in item(report, "vt-x").message


def test_qemu_machine_without_vt_x_passes_the_lab_profile():
    snap = snapshot_for_profile(BY_ID["qemu-q35-seabios"])
    assert "vmx" not in snap.cpu_flags and not snap.acpi_dmar
    report = check(snap)
    assert report.profile_id == "qemu-q35-seabios" and report.lab
    assert report.verdict == "pass"
    assert "lab/test profile with relaxed requirements" in item(report, "model").message
    snap.firmware = "uefi"
    assert check(snap).profile_id == "qemu-q35-ovmf"


def test_profiles_dir_argument_is_honoured(tmp_path):
    (tmp_path / "only.toml").write_text((REPO_PROFILES / "lenovo-thinkpad-x230.toml").read_text())
    snap = snapshot_for_profile(BY_ID["lenovo-thinkpad-x230"])
    assert check_machine(snap, tmp_path).profile_id == "only"
    other = snapshot_for_profile(BY_ID["dell-latitude-7490"])
    assert check_machine(other, tmp_path).profile_name == ""


def test_quirks_go_first_on_the_plan_command_line():
    from engine_installer.hw.check import merge_kernel_args

    report = check(snapshot_for_profile(BY_ID["dell-latitude-7490"]))
    assert merge_kernel_args(report, ["quiet", "i915.enable_psr=0"]) == [
        "i915.enable_psr=0",
        "quiet",
    ]
    assert merge_kernel_args(report, ["i915.enable_psr=1"])[-1] == "i915.enable_psr=1"
