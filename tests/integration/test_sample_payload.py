"""engine-iso sample-payload: payloads that verify against their manifest, built reproducibly."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from engine_installer.iso.cli import main as engine_iso
from engine_installer.iso.sample_payload import build_sample_payload
from engine_installer.ondisk.payload import load_manifest, sha256_file, verify_payload


def debugfs_cat(image: Path, path: str) -> bytes:
    return subprocess.run(
        ["debugfs", "-R", f"cat {path}", str(image)], check=True, capture_output=True
    ).stdout


@pytest.mark.parametrize("version", ["4.5", "5.0"])
def test_command_builds_a_verifiable_payload(tmp_path: Path, version: str) -> None:
    out = tmp_path / "engine"
    assert (
        engine_iso(["sample-payload", "--version", version, "--build", "12", "--out", str(out)])
        == 0
    )
    manifest = load_manifest(out)
    verify_payload(manifest)
    assert (manifest.product, manifest.version, manifest.build) == ("Engine", version, "12")
    assert manifest.slot_size == 256 * 1024 * 1024
    root = manifest.root_image.path
    assert manifest.root_image.size < manifest.slot_size
    subprocess.run(["e2fsck", "-fn", str(root)], check=True, capture_output=True)
    # The slot carries the same kernel and initrd bytes as the separate artifacts.
    assert debugfs_cat(root, "/boot/vmlinuz") == (out / "vmlinuz").read_bytes()
    assert debugfs_cat(root, "/boot/initrd.img") == (out / "initrd.img").read_bytes()
    release = debugfs_cat(root, "/etc/engine-release").decode()
    assert f"VERSION={version}\n" in release and "BUILD=12\n" in release
    assert debugfs_cat(root, "/sbin/init").startswith(b"#!/bin/sh")


def test_reproducible_with_source_date_epoch(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    first = build_sample_payload("5.0", tmp_path / "one", build="3")
    second = build_sample_payload("5.0", tmp_path / "two", build="3")
    for name in ("root.img", "initrd.img", "vmlinuz"):
        assert sha256_file(first.parent / name) == sha256_file(second.parent / name), name
    assert first.read_text() == second.read_text()
    other = build_sample_payload("5.0", tmp_path / "three", build="4")
    assert sha256_file(other.parent / "root.img") != sha256_file(first.parent / "root.img")


def test_pad_to_makes_a_bigger_image_and_slot(tmp_path: Path) -> None:
    manifest = load_manifest(
        build_sample_payload("4.5", tmp_path / "big", pad_to=300 * 1024 * 1024).parent
    )
    assert manifest.root_image.size == 300 * 1024 * 1024
    assert manifest.slot_size > manifest.root_image.size


def test_bad_input_is_one_line(tmp_path: Path, capsys) -> None:
    assert engine_iso(["sample-payload", "--version", "5 0", "--out", str(tmp_path)]) == 2
    assert "not usable as an Engine version" in capsys.readouterr().err
    missing = str(tmp_path / "vmlinuz-9.9-amd64")
    assert (
        engine_iso(
            ["sample-payload", "--version", "5.0", "--out", str(tmp_path), "--kernel", missing]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("error: kernel") and err.count("\n") == 1
