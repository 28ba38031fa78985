"""The boot environment: round trip, and agreement with GRUB's own grub-editenv."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from engine_installer.base.errors import UserError
from engine_installer.disks.files import write_bootenv_file
from engine_installer.ondisk.bootenv import (
    BootEnv,
    bootenv_bytes,
    format_grubenv,
    parse_bootenv,
    parse_grubenv,
    read_bootenv,
)

needs_editenv = pytest.mark.skipif(
    shutil.which("grub-editenv") is None, reason="grub-editenv (grub2-common) not installed"
)


def editenv(path: Path, *args: str) -> str:
    return subprocess.run(
        ["grub-editenv", str(path), *args], check=True, capture_output=True, text=True
    ).stdout


@pytest.mark.parametrize(
    "env",
    [BootEnv(active="A"), BootEnv(active="A", trial="B", tries=3), BootEnv("B", "A", 1)],
)
def test_round_trip(tmp_path: Path, env: BootEnv) -> None:
    path = tmp_path / "grubenv"
    write_bootenv_file(path, env)
    assert path.stat().st_size == 1024
    assert read_bootenv(path) == env
    assert not (tmp_path / "grubenv.new").exists()


def test_format_is_exactly_one_block_and_parses_back() -> None:
    values = {"a": "1", "odd": "back\\slash", "nl": "two\nlines", "empty": ""}
    block = format_grubenv(values)
    assert len(block) == 1024
    assert block.startswith(b"# GRUB Environment Block\n")
    assert parse_grubenv(block) == values


def test_write_keeps_other_variables(tmp_path: Path) -> None:
    path = tmp_path / "grubenv"
    path.write_bytes(format_grubenv({"saved_entry": "x", "engine_active": "A"}))
    write_bootenv_file(path, BootEnv(active="A", trial="B", tries=3))
    assert parse_grubenv(path.read_bytes())["saved_entry"] == "x"


def test_missing_or_garbled_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no boot environment"):
        read_bootenv(tmp_path / "nope")
    garbled = tmp_path / "garbled"
    garbled.write_bytes(b"\0" * 1024)
    with pytest.raises(UserError, match="damaged"):
        read_bootenv(garbled)
    no_slot = tmp_path / "noslot"
    no_slot.write_bytes(format_grubenv({"engine_active": "C"}))
    with pytest.raises(UserError, match="active slot"):
        read_bootenv(no_slot)


def test_bad_values_are_refused(tmp_path: Path) -> None:
    for env in (BootEnv("C"), BootEnv("A", "X"), BootEnv("A", "B", 4)):
        with pytest.raises(ValueError):
            write_bootenv_file(tmp_path / "grubenv", env)
    assert not (tmp_path / "grubenv").exists()


@needs_editenv
def test_grub_editenv_reads_what_python_writes(tmp_path: Path) -> None:
    path = tmp_path / "grubenv"
    write_bootenv_file(path, BootEnv(active="B", trial="A", tries=2))
    listed = editenv(path, "list").splitlines()
    assert "engine_active=B" in listed
    assert "engine_trial=A" in listed
    assert "engine_tries=2" in listed


@needs_editenv
def test_python_reads_what_grub_editenv_writes(tmp_path: Path) -> None:
    path = tmp_path / "grubenv"
    editenv(path, "create")
    editenv(path, "set", "engine_active=A", "engine_trial=B", "engine_tries=3", "x=a\\b")
    assert path.stat().st_size == 1024
    assert read_bootenv(path) == BootEnv(active="A", trial="B", tries=3)
    assert parse_grubenv(path.read_bytes())["x"] == "a\\b"
    # And the other way round after GRUB-style decrement + clear.
    editenv(path, "set", "engine_trial=", "engine_tries=0")
    assert read_bootenv(path) == BootEnv(active="A")


def test_bytes_helpers_match_the_file_api(tmp_path: Path) -> None:
    env = BootEnv(active="A", trial="B", tries=3)
    write_bootenv_file(tmp_path / "grubenv", env)
    assert bootenv_bytes(env) == (tmp_path / "grubenv").read_bytes()
    assert parse_bootenv(bootenv_bytes(env)) == env
