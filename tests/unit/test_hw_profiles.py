"""Every shipped hardware profile loads, validates and recognises only its own model."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine_installer.base.errors import UserError
from engine_installer.hw.match import match_profile
from engine_installer.hw.profiles import ENV_VAR, default_profiles_dir, load_profile, load_profiles
from engine_installer.hw.synth import snapshot_for_profile

REPO_PROFILES = Path(__file__).resolve().parents[2] / "hw-profiles"
PROFILES = load_profiles(REPO_PROFILES)
LAPTOPS = [p for p in PROFILES if not p.lab]


def test_default_dir_is_the_checkout_and_env_overrides(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert default_profiles_dir() == REPO_PROFILES
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert default_profiles_dir() == tmp_path


def test_fleet_coverage():
    assert len(LAPTOPS) >= 12
    vendors = {p.sample["sys_vendor"] for p in LAPTOPS}
    assert {"Dell Inc.", "LENOVO"} <= vendors and vendors & {"HP", "Hewlett-Packard"}
    years = [p.released for p in LAPTOPS]
    assert min(years) <= 2011 and max(years) >= 2023
    for family in ("Latitude", "EliteBook", "ThinkPad"):
        assert sum(family in p.name for p in LAPTOPS) >= 4, family


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.id)
def test_profile_is_complete(profile):
    assert profile.sample, "every profile documents what a real unit reports in [sample]"
    assert profile.firmware_modes
    for arg in profile.kernel_args:
        assert arg.reason and arg.confidence
    if not profile.lab:
        assert (profile.vt_x, profile.ept, profile.vt_d) == ("require",) * 3
        assert profile.setup_key and profile.min_ram_gib >= 8
        assert "AHCI" in profile.storage_setting or "VMD" in profile.storage_setting


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.id)
def test_sample_matches_only_its_own_profile(profile):
    snap = snapshot_for_profile(profile)
    assert match_profile(snap, PROFILES) is profile
    others = [p for p in PROFILES if p is not profile]
    assert match_profile(snap, others) is None


def test_qemu_profiles_are_lab_profiles_without_vt_requirements():
    qemu = {p.id: p for p in PROFILES if p.id.startswith("qemu-")}
    assert set(qemu) == {"qemu-q35-seabios", "qemu-q35-ovmf"}
    for p in qemu.values():
        assert p.lab and (p.vt_x, p.ept, p.vt_d) == ("ignore",) * 3
        assert p.sample["product_name"] == "Standard PC (Q35 + ICH9, 2009)"
    assert qemu["qemu-q35-seabios"].firmware_modes == ["bios"]
    assert qemu["qemu-q35-ovmf"].firmware_modes == ["uefi"]


GOOD = (REPO_PROFILES / "dell-latitude-7490.toml").read_text()


MATCH_7490 = 'sys_vendor = "Dell Inc."\nproduct_name = "Latitude 7490"\n'
# (text to replace, replacement, the dotted key the error must name)
BAD_EDITS = [
    ("schema = 1", "colour = 'red'\nschema = 1", "colour"),
    ("[cpu]\n", "[cpu]\nvt_y = 'require'\n", "cpu.vt_y"),
    ('vt_d = "require"\n', "", "cpu.vt_d"),
    ('vt_x = "require"', 'vt_x = "maybe"', "cpu.vt_x"),
    ("min_gib = 8", 'min_gib = "8"', "memory.min_gib"),
    ("min_gib = 8", "min_gib = true", "memory.min_gib"),
    ('modes = ["uefi", "bios"]', 'modes = ["efi"]', "firmware.modes"),
    ('product_name = "Latitude 7490"', 'product_name = "re:(["', "match.product_name"),
    ("schema = 1", "schema = 2", "schema"),
    ('confidence = "reported"', 'confidence = "rumour"', "kernel_args[0].confidence"),
    ('arg = "i915.enable_psr=0"', 'arg = "a=1 b=2"', "kernel_args[0].arg"),
    ("[sample]\n", "[sample]\nserial = 'x'\n", "sample.serial"),
    (MATCH_7490, 'sys_vendor = "Dell Inc."\n', "match"),
]


@pytest.mark.parametrize(("old", "new", "key"), BAD_EDITS, ids=[e[2] for e in BAD_EDITS])
def test_bad_profile_error_names_file_and_key(tmp_path, old, new, key):
    path = tmp_path / "broken-model.toml"
    assert old in GOOD
    path.write_text(GOOD.replace(old, new, 1))
    with pytest.raises(UserError) as err:
        load_profile(path)
    message = str(err.value)
    assert str(path) in message and f"key '{key}'" in message
    assert "\n" not in message


def test_bad_toml_syntax_names_file(tmp_path):
    path = tmp_path / "syntax.toml"
    path.write_text("schema = 1\nname = \n")
    with pytest.raises(UserError, match="syntax.toml is not valid TOML"):
        load_profile(path)


def test_missing_directory_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="ENGINE_HW_PROFILES"):
        load_profiles(tmp_path / "nope")
