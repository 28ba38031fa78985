"""grub.cfg rendering: GRUB's own parser accepts it and it carries the boot-counting steps."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from engine_installer.base.errors import UserError
from engine_installer.disks.grub_config import render_grub_cfg


@pytest.mark.skipif(shutil.which("grub-script-check") is None, reason="grub-common missing")
@pytest.mark.parametrize("args", [[], ["quiet"], ["engine.debug=1", "a b"]])
def test_grub_script_check_accepts_it(tmp_path: Path, args: list[str]) -> None:
    cfg = tmp_path / "grub.cfg"
    cfg.write_text(render_grub_cfg(args))
    result = subprocess.run(["grub-script-check", str(cfg)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_contents() -> None:
    cfg = render_grub_cfg(["quiet", "a b"])
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
    assert linux.endswith(" quiet 'a b'")
    assert "engine_boot_slot A 3" in cfg and "engine_boot_slot B 4" in cfg


def test_unquotable_argument_is_a_user_error() -> None:
    with pytest.raises(UserError, match="kernel argument"):
        render_grub_cfg(["it's"])
