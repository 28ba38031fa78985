"""grub.cfg for an installed Engine disk: one file for BIOS and UEFI GRUB, with boot counting.

The file lives on the ESP (layout.GRUB_DIR). When GRUB reads it, $root is the ESP, e.g.
hd0,gpt2; the slots are partitions 3 (A) and 4 (B) of the same disk, so the config derives
them from $root and never searches other disks (a laptop may carry a second Engine disk).

Boot counting (state in the GRUB environment block, see engine_installer/ondisk/bootenv.py):
- engine_trial set and engine_tries 3/2/1: step tries down (GRUB has no arithmetic, hence the
  string ladder), save_env, boot the trial slot with engine.trial=1; the known-good slot is
  the fallback entry, so a trial slot GRUB cannot even load falls back in the same boot.
- engine_trial set and tries exhausted: clear the trial, save_env, boot engine_active.
- The new Engine, once up, marks itself good (engine_active=<it>, no trial) from userspace.
"""

from __future__ import annotations

import re

from engine_installer.base.errors import UserError
from engine_installer.ondisk.layout import GRUBENV_PATH, SLOT_PARTITION_NUMBERS, SLOTS

SERIAL_SPEED = 115200
TIMEOUT_SECONDS = 1
MENU_TITLES = {slot: f"Engine (slot {slot})" for slot in SLOTS}
KERNEL_PATH = "/boot/vmlinuz"
INITRD_PATH = "/boot/initrd.img"

_PLAIN_ARG = re.compile(r"[A-Za-z0-9_.,:=/+@%-]+")


def _quote_arg(arg: str) -> str:
    if _PLAIN_ARG.fullmatch(arg):
        return arg
    if "'" in arg or "\n" in arg or not arg:
        raise UserError(
            f"kernel argument {arg!r} cannot be passed through grub.cfg: "
            "drop the quote or newline from it"
        )
    return f"'{arg}'"


def render_grub_cfg(kernel_args: list[str]) -> str:
    extra = "".join(f" {_quote_arg(arg)}" for arg in kernel_args)
    # engine.esp lets the initrd pick this disk when several Engine disks are attached.
    cmdline = (
        f"console=tty0 console=ttyS0,{SERIAL_SPEED} engine.slot=$1 "
        f"engine.trial=$engine_is_trial engine.esp=$engine_esp_uuid{extra}"
    )
    tries_ladder = "\n".join(
        f'  {"if" if n == 3 else "elif"} [ "$engine_tries" = "{n}" ]; then\n'
        f"    set engine_tries={n - 1}\n"
        f'    set engine_trial_boot="$engine_trial"'
        for n in (3, 2, 1)
    )
    entries = "\n".join(
        f'menuentry "{MENU_TITLES[slot]}" --id engine-slot-{slot} {{\n'
        f"  engine_boot_slot {slot} {SLOT_PARTITION_NUMBERS[slot]}\n"
        "}"
        for slot in SLOTS
    )
    return f"""\
# Engine boot menu: written by the Engine installer, shared by BIOS and UEFI GRUB.
# The boot environment (which slot, boot counting) is {GRUBENV_PATH} next to this file.
serial --unit=0 --speed={SERIAL_SPEED} --word=8 --parity=no --stop=1
terminal_input serial console
terminal_output serial console
set timeout_style=menu
set timeout={TIMEOUT_SECONDS}

insmod part_gpt
insmod fat
insmod ext2
insmod regexp
insmod probe
insmod loadenv

# $root is the ESP this file was read from (e.g. hd0,gpt2); the slots sit on the same disk.
regexp --set=1:engine_disk '^(.*),gpt[0-9]+$' "$root"
probe --set=engine_esp_uuid --fs-uuid "($root)"
set engine_env="($root)/{GRUBENV_PATH}"

set engine_active=A
set engine_trial=""
set engine_tries=0
load_env --file "$engine_env" engine_active engine_trial engine_tries
if [ "$engine_active" != "B" ]; then
  set engine_active=A
fi
set engine_trial_boot=""
if [ "$engine_trial" = "A" -o "$engine_trial" = "B" ]; then
{tries_ladder}
  else
    # Tries exhausted: the trial slot never marked itself good; give up on it.
    set engine_trial=""
    set engine_tries=0
  fi
  save_env --file "$engine_env" engine_trial engine_tries
fi

# Menu entries are numbered: 0 = slot A, 1 = slot B.
if [ "$engine_active" = "B" ]; then
  set engine_active_entry=1
else
  set engine_active_entry=0
fi
set default=$engine_active_entry
if [ "$engine_trial_boot" = "A" ]; then
  set engine_trial_part={SLOT_PARTITION_NUMBERS["A"]}
else
  set engine_trial_part={SLOT_PARTITION_NUMBERS["B"]}
fi
if [ -n "$engine_trial_boot" ]; then
  if [ ! -f "($engine_disk,gpt$engine_trial_part){KERNEL_PATH}" ]; then
    # The try is spent (saved above), but a slot without a readable kernel is not worth a
    # failed boot and GRUB's 10 s error pause: boot the known-good slot now.
    echo "Engine: slot $engine_trial_boot has no readable kernel; booting slot $engine_active"
    set engine_trial_boot=""
  fi
fi
if [ -n "$engine_trial_boot" ]; then
  if [ "$engine_trial_boot" = "B" ]; then
    set default=1
  else
    set default=0
  fi
  # If GRUB cannot load the trial slot at all, boot the known-good one right away.
  set fallback=$engine_active_entry
fi

# Menu entries run in a new context that only sees exported variables.
export engine_disk engine_esp_uuid engine_trial_boot

function engine_boot_slot {{
  # $1: slot letter, $2: its GPT partition number on the ESP's disk.
  set root="$engine_disk,gpt$2"
  if [ "$engine_trial_boot" = "$1" ]; then
    set engine_is_trial=1
  else
    set engine_is_trial=0
  fi
  echo "Engine: booting slot $1 from ($root), trial=$engine_is_trial"
  linux {KERNEL_PATH} {cmdline}
  initrd {INITRD_PATH}
}}

{entries}
"""
