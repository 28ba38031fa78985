"""medium_check on small real ISOs built with xorriso (no root needed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine_installer.base.errors import UserError
from engine_installer.ondisk import medium as medium_check
from tests.usb_helpers import (
    build_iso,
    file_offset_in_iso,
    flip_byte,
    make_engine_iso,
    make_engine_tree,
    write_sums,
)

pytestmark = pytest.mark.skipif(shutil.which("xorriso") is None, reason="needs xorriso")


@pytest.fixture(scope="module")
def good_iso(tmp_path_factory) -> Path:
    return make_engine_iso(tmp_path_factory.mktemp("iso"))


def copy(iso: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy.iso"
    shutil.copyfile(iso, target)
    return target


def test_good_iso_passes_with_progress(good_iso: Path) -> None:
    events = []
    assert medium_check.is_engine_iso(good_iso)
    assert medium_check.has_hybrid_mbr(good_iso)
    medium_check.check_iso(good_iso, events.append)
    assert events[-1].done == events[-1].total > 0
    dones = [event.done for event in events]
    assert dones == sorted(dones)


@pytest.mark.parametrize("victim", ["/engine/root.img", "/engine/vmlinuz", "/live/README"])
def test_one_corrupt_byte_names_that_file(good_iso: Path, tmp_path: Path, victim: str) -> None:
    iso = copy(good_iso, tmp_path)
    flip_byte(iso, file_offset_in_iso(iso, victim) + 7)
    with pytest.raises(UserError) as err:
        medium_check.check_iso(iso)
    assert str(err.value) == (
        f"{victim.lstrip('/')} on copy.iso does not match its checksum: "
        "the ISO is damaged, download or build it again"
    )


def test_truncated_iso_refused(good_iso: Path, tmp_path: Path) -> None:
    iso = copy(good_iso, tmp_path)
    with open(iso, "r+b") as handle:
        handle.truncate(iso.stat().st_size - 64 * 1024)
    with pytest.raises(UserError, match="truncated"):
        medium_check.check_iso(iso)


def test_not_an_iso(tmp_path: Path) -> None:
    junk = tmp_path / "junk.iso"
    junk.write_bytes(bytes(1 << 20))
    assert not medium_check.is_engine_iso(junk)
    assert not medium_check.has_hybrid_mbr(junk)
    with pytest.raises(UserError, match="not an ISO9660 image"):
        medium_check.check_iso(junk)
    with pytest.raises(UserError, match="not found"):
        medium_check.check_iso(tmp_path / "missing.iso")


def test_plain_iso_without_payload_or_mbr(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "boot").mkdir(parents=True)
    (tree / "boot" / "eltorito.img").write_bytes(bytes(2048))
    (tree / "hello.txt").write_text("hi\n")
    iso = build_iso(tree, tmp_path / "plain.iso", hybrid=False)
    assert not medium_check.is_engine_iso(iso)
    assert not medium_check.has_hybrid_mbr(iso)
    with pytest.raises(UserError, match="has no /SHA256SUMS"):
        medium_check.check_iso(iso)


def test_manifest_hash_checked_even_when_sums_agree(tmp_path: Path) -> None:
    tree = make_engine_tree(tmp_path / "tree")
    # A root image replaced after the manifest was written, with SHA256SUMS regenerated.
    (tree / "engine" / "root.img").write_bytes(bytes(256 * 1024))
    write_sums(tree)
    iso = build_iso(tree, tmp_path / "x.iso")
    with pytest.raises(UserError, match="engine/root.img on x.iso does not match the manifest"):
        medium_check.check_iso(iso)


def test_unlisted_and_missing_files(tmp_path: Path) -> None:
    tree = make_engine_tree(tmp_path / "tree")
    (tree / "extra.bin").write_bytes(b"x")
    with pytest.raises(UserError, match="extra.bin on .* is not listed in SHA256SUMS"):
        medium_check.check_medium_dir(tree)
    (tree / "extra.bin").unlink()
    (tree / "live" / "README").unlink()
    with pytest.raises(UserError, match="live/README is listed in SHA256SUMS but missing"):
        medium_check.check_medium_dir(tree)


def test_medium_dir_good_and_corrupt(tmp_path: Path) -> None:
    tree = make_engine_tree(tmp_path / "tree")
    (tree / "boot" / "boot.catalog").write_bytes(bytes(2048))  # as on a mounted medium
    medium_check.check_medium_dir(tree)
    flip_byte(tree / "engine" / "initrd.img", 10)
    with pytest.raises(UserError, match="^engine/initrd.img on .* does not match its checksum"):
        medium_check.check_medium_dir(tree)


def test_bad_manifest_refused(tmp_path: Path) -> None:
    tree = make_engine_tree(tmp_path / "tree")
    (tree / "engine" / "manifest.json").write_text("{not json")
    write_sums(tree)
    with pytest.raises(UserError, match="engine/manifest.json is not valid JSON"):
        medium_check.check_medium_dir(tree)
