"""engine.autoinstall= on the kernel command line → where the answer file is."""

from __future__ import annotations

import pytest

from engine_installer.autoinstall import autoinstall_value, find_answer_file
from engine_installer.base.errors import UserError


def test_no_argument_means_the_text_ui(tmp_path):
    cmdline = "BOOT_IMAGE=/live/vmlinuz boot=live console=ttyS0 quiet"
    assert autoinstall_value(cmdline) is None
    assert find_answer_file(cmdline, fwcfg_root=tmp_path, medium_root=tmp_path) is None


def test_fwcfg(tmp_path):
    raw = tmp_path / "opt/engine/answers.toml/raw"
    raw.parent.mkdir(parents=True)
    raw.write_text("[install]\n")
    found = find_answer_file("quiet engine.autoinstall=fwcfg", fwcfg_root=tmp_path)
    assert found == raw


def test_fwcfg_missing_names_the_qemu_option(tmp_path):
    with pytest.raises(UserError, match=r"-fw_cfg name=opt/engine/answers.toml,file="):
        find_answer_file("engine.autoinstall=fwcfg", fwcfg_root=tmp_path)


def test_paths_on_the_medium_and_absolute(tmp_path):
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab/a.toml").write_text("")
    assert find_answer_file("engine.autoinstall=lab/a.toml", medium_root=tmp_path) == (
        tmp_path / "lab/a.toml"
    )
    absolute = f"engine.autoinstall={tmp_path}/lab/a.toml"
    assert find_answer_file(absolute, medium_root=tmp_path / "x") == tmp_path / "lab/a.toml"
    with pytest.raises(UserError, match="no answer file at"):
        find_answer_file("engine.autoinstall=missing.toml", medium_root=tmp_path)


def test_bare_argument_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="needs a value"):
        find_answer_file("engine.autoinstall", medium_root=tmp_path)


def test_other_commands_are_never_turned_unattended(monkeypatch, capsys):
    """`engine-installer detect` in a live shell stays `detect`, whatever the command line."""
    import engine_installer.autoinstall as auto

    called = []
    monkeypatch.setattr("engine_installer.cli.main", lambda argv: called.append(argv) or 0)
    monkeypatch.setattr(auto, "find_answer_file", lambda _c: pytest.fail("looked for answers"))
    assert auto.main(["detect", "--json"]) == 0
    assert called == [["detect", "--json"]]
