"""Debian's signed GRUB cannot load modules from disk under Secure Boot: every command the
medium's menu, its EFI stub and an installed Engine's grub.cfg run must be built into the
signed image. GRUB's own command.lst maps each command to its module."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine_installer.disks import grub_config
from engine_installer.iso import bootloader, signed_chain

COMMAND_LST = Path("/usr/lib/grub/x86_64-efi/command.lst")
# In GRUB's kernel or script parser, not in any module.
CORE = {"set", "unset", "insmod", "rmmod", "lsmod", "export"}
KEYWORDS = {"if", "then", "elif", "else", "fi", "for", "do", "done", "while", "until",
            "function", "{", "}", "!"}  # fmt: skip


def command_modules() -> dict[str, str]:
    table = {"[": "test"}
    for line in COMMAND_LST.read_text().splitlines():
        name, _, module = line.lstrip("*").partition(":")
        table[name.strip()] = module.strip()
    return table


def commands_in(script: str) -> tuple[set[str], set[str]]:
    """(commands, insmod'ed modules) of a GRUB script: the first word of every statement."""
    functions = set(re.findall(r"^\s*function\s+(\w+)", script, re.MULTILINE))
    commands, inserted = set(), set()
    for line in script.splitlines():
        line = re.sub(r'"[^"]*"|\'[^\']*\'', "STRING", line).split("#", 1)[0]
        for statement in re.split(r";|\b(?:then|else|do)\b", line):
            words = statement.split()
            if words and words[0] == "for":  # for NAME in WORDS: no command
                continue
            while words and words[0] in KEYWORDS:
                words = words[1:]
            if not words or words[0] in functions or words[0].startswith("$"):
                continue
            if words[0] == "insmod":
                inserted.add(words[1])
            commands.add(words[0])
    return commands - CORE, inserted


SCRIPTS = {
    "medium menu": bootloader.grub_menu("abc", "Engine 5.0 (build 1)"),
    "medium EFI stub": bootloader.early_config("abc"),
    "installed grub.cfg": grub_config.render_grub_cfg(),
}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_every_command_is_built_into_debians_signed_grub(name):
    if not signed_chain.GRUB.is_file() or not COMMAND_LST.is_file():
        pytest.skip("grub-efi-amd64-signed / grub-efi-amd64-bin not installed (make setup)")
    builtin = signed_chain.builtin_modules(signed_chain.GRUB)
    table = command_modules()
    commands, inserted = commands_in(SCRIPTS[name])
    unknown = sorted(c for c in commands if c not in table)
    assert not unknown, f"{name}: commands GRUB does not know: {unknown}"
    missing = sorted(f"{c} ({table[c]})" for c in commands if table[c] not in builtin)
    missing += sorted(m for m in inserted if m not in builtin)
    assert not missing, f"{name} needs modules the signed GRUB lacks: {missing}"


def test_the_module_list_is_read_from_the_image():
    if not signed_chain.GRUB.is_file():
        pytest.skip("grub-efi-amd64-signed not installed (make setup)")
    builtin = signed_chain.builtin_modules(signed_chain.GRUB)
    assert {"loadenv", "regexp", "probe", "search", "serial", "linux", "fat", "iso9660"} <= builtin
    assert "setpci" not in builtin  # a module lockdown would refuse anyway


def test_the_network_grub_reads_files_over_tftp():
    """For UEFI PXE with Secure Boot (engine-iso netboot): efinet and tftp are built in."""
    if not signed_chain.NET_GRUB.is_file():
        pytest.skip("grub-efi-amd64-signed not installed (make setup)")
    builtin = signed_chain.builtin_modules(signed_chain.NET_GRUB)
    assert {"efinet", "tftp", "net", "linux", "regexp", "serial"} <= builtin
    assert signed_chain.host_chain(network=True).grub == signed_chain.NET_GRUB
