"""grub.cfg rendering and the per-slot boot options: GRUB's own tools accept them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from engine_installer.base.errors import UserError
from engine_installer.disks.grub_config import render_grub_cfg, slot_env_bytes
from engine_installer.ondisk.bootenv import parse_grubenv
from engine_installer.ondisk.cmdline import MAX_TOTAL_LENGTH, check_kernel_args


@pytest.mark.skipif(shutil.which("grub-script-check") is None, reason="grub-common missing")
def test_grub_script_check_accepts_it(tmp_path: Path) -> None:
    cfg = tmp_path / "grub.cfg"
    cfg.write_text(render_grub_cfg())
    result = subprocess.run(["grub-script-check", str(cfg)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_contents() -> None:
    cfg = render_grub_cfg()
    assert 'menuentry "Engine (slot A)"' in cfg
    assert 'menuentry "Engine (slot B)"' in cfg
    assert "serial --unit=0 --speed=115200" in cfg
    assert "terminal_output serial console" in cfg
    assert "load_env" in cfg and "save_env" in cfg
    assert "set timeout=1" in cfg
    # Boot counting steps 3 -> 2 -> 1 -> 0, then clears the trial.
    for before, after in (("3", "2"), ("2", "1"), ("1", "0")):
        assert f'[ "$engine_tries" = "{before}" ]; then\n    set engine_tries={after}' in cfg
    assert 'set engine_trial=""\n    set engine_tries=0' in cfg
    linux = next(line for line in cfg.splitlines() if line.strip().startswith("linux "))
    assert "console=tty0 console=ttyS0,115200 engine.slot=$1 engine.trial=$engine_is_trial" in linux
    # Each slot's options come from its own environment block, read with a whitelist.
    assert linux.endswith("engine.keymap=$engine_keymap $engine_args")
    assert 'load_env --file "${engine_slot_env}$1.env" engine_args engine_keymap' in cfg
    assert "engine_boot_slot A 3" in cfg and "engine_boot_slot B 4" in cfg


@pytest.mark.skipif(shutil.which("grub-editenv") is None, reason="grub2-common missing")
def test_slot_options_are_a_grub_environment_block(tmp_path: Path) -> None:
    block = tmp_path / "slot-B.env"
    block.write_bytes(slot_env_bytes(["quiet", "i915.enable_psr=0"], "de-latin1"))
    listed = subprocess.run(
        ["grub-editenv", str(block), "list"], capture_output=True, text=True, check=True
    ).stdout
    assert "engine_args=quiet i915.enable_psr=0\n" in listed
    assert "engine_keymap=de-latin1\n" in listed
    # The longest arguments allowed still fit one block.
    longest = ["a" * 255] * 3
    assert len(" ".join(longest)) <= MAX_TOTAL_LENGTH
    assert parse_grubenv(slot_env_bytes(longest, "mac-usb-de-latin1-nodeadkeys"))


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (["it's"], 'contains "\'"'),
        (["a b"], "contains ' '"),
        (["$root"], "contains '$'"),
        (["x;reboot"], "contains ';'"),
        (["a\nb"], r"contains '\n'"),
        ([""], "is empty"),
        ("quiet", "is a string"),
        (5, "is not a list"),
        ([5], "is not a string"),
        (["a"] * 33, "at most 32"),
        (["a" * 257], "at most 256"),
        (["a" * 200] * 5, "adds up to"),
    ],
)
def test_kernel_args_are_checked(value, words) -> None:
    with pytest.raises(UserError) as err:
        check_kernel_args(value)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_good_kernel_args_pass() -> None:
    assert check_kernel_args(["quiet", "i915.enable_psr=0", "console=ttyS0,115200"]) == [
        "quiet",
        "i915.enable_psr=0",
        "console=ttyS0,115200",
    ]
