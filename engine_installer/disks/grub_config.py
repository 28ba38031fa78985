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

Per-slot boot options: each slot's kernel arguments and keymap are in its own GRUB environment
block next to this file (layout.SLOT_ENV_PATHS), read with a whitelist when that slot boots. An
upgrade writes the new slot's block before the switch, so the options chosen on the screens
apply to the new Engine without rewriting this file. The values were checked by
ondisk/cmdline.py: plain words that GRUB's word splitting passes on unchanged.
"""

from __future__ import annotations

from engine_installer.ondisk.bootenv import format_grubenv
from engine_installer.ondisk.layout import GRUB_DIR, GRUBENV_PATH, SLOT_PARTITION_NUMBERS, SLOTS

SERIAL_SPEED = 115200
TIMEOUT_SECONDS = 1
MENU_TITLES = {slot: f"Engine (slot {slot})" for slot in SLOTS}
KERNEL_PATH = "/boot/vmlinuz"
INITRD_PATH = "/boot/initrd.img"

KEY_ARGS = "engine_args"
KEY_KEYMAP = "engine_keymap"


def slot_env_bytes(kernel_args: list[str], keymap: str) -> bytes:
    """A slot's boot options as a GRUB environment block (checked arguments only)."""
    return format_grubenv({KEY_ARGS: " ".join(kernel_args), KEY_KEYMAP: keymap})


def render_grub_cfg() -> str:
    # engine.esp lets the initrd pick this disk when several Engine disks are attached.
    cmdline = (
        f"console=tty0 console=ttyS0,{SERIAL_SPEED} engine.slot=$1 "
        "engine.trial=$engine_is_trial engine.esp=$engine_esp_uuid "
        "engine.keymap=$engine_keymap $engine_args"
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
set engine_slot_env="($root)/{GRUB_DIR}/slot-"

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
export engine_disk engine_esp_uuid engine_trial_boot engine_slot_env

function engine_boot_slot {{
  # $1: slot letter, $2: its GPT partition number on the ESP's disk.
  set root="$engine_disk,gpt$2"
  if [ "$engine_trial_boot" = "$1" ]; then
    set engine_is_trial=1
  else
    set engine_is_trial=0
  fi
  # The slot's boot options (kernel arguments, keymap); none when its block is missing.
  set engine_args=""
  set engine_keymap=""
  load_env --file "${{engine_slot_env}}$1.env" {KEY_ARGS} {KEY_KEYMAP}
  echo "Engine: booting slot $1 from ($root), trial=$engine_is_trial"
  linux {KERNEL_PATH} {cmdline}
  initrd {INITRD_PATH}
}}

{entries}
"""
