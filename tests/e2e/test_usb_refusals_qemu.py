"""engine-usb refuses sticks the running system uses, on a real kernel with real USB sticks.

The tool guest (qemu/guest.py: the host's Debian kernel, this checkout over 9p) gets five
virtual USB sticks on xHCI and puts four of them to use the way a technician's machine could:
one held by a device-mapper linear target (as LVM or dm-crypt would hold it), one as active
swap, one mounted as /home, one as the live system's medium (/run/live/medium). `engine-usb
list` offers only the fifth; `engine-usb write` to each of the four fails with one line
`error: ...` naming the reason, exit code 3, and the stick reads back byte-identical (hashed
in the guest before and after, page cache dropped). Once the guest releases them, all five are
listed: the refusals came from that use, not from the sticks.

The guest is needed because this host's kernel may have no device-mapper; the guest kernel is
Debian's, with dm-mod as a module.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest

from qemu.guest import DONE, tool_guest
from tests.usb_helpers import make_engine_iso

pytestmark = [pytest.mark.qemu, pytest.mark.root]

REPO = Path(__file__).resolve().parents[2]
GUEST_TIMEOUT = 900
MIB = 1024 * 1024
STICK_SIZE = 32 * MIB
# serial → how the guest uses the stick (a shell word used in section names)
STICKS = {
    "ENGINE-USB-60": "HELD",
    "ENGINE-USB-61": "SWAP",
    "ENGINE-USB-62": "MOUNTED",
    "ENGINE-USB-63": "LIVE",
    "ENGINE-USB-64": "CLEAN",
}
REASONS = {
    "HELD": r"it is a member of LVM, RAID or dm-crypt \(held by dm-\d+\)",
    "SWAP": r"it holds active swap",
    "MOUNTED": r"it holds /home of the running system",
    "LIVE": r"it holds /run/live/medium of the running system",
}


def guest_script(path: Path, iso: Path) -> Path:
    usb = str(Path(sys.executable).with_name("engine-usb"))
    find = "\n".join(
        f'{use}=$(stick {serial}) || echo "@@SETUP-FAILED no {serial}"'
        for serial, use in STICKS.items()
    )
    refuse = "\n".join(f"refuse {use} ${use}" for use in REASONS)
    mkfs = "mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0"
    path.write_text(f"""modprobe -a xhci_pci usb_storage sd_mod ext4 dm_mod 2>/dev/null
export SYSTEMD_IGNORE_CHROOT=1 PYTHONDONTWRITEBYTECODE=1
cd {REPO}
/lib/systemd/systemd-udevd --daemon >/dev/null 2>&1
udevadm trigger --action=add && udevadm settle --timeout=60
stick() {{  # the /dev node of the USB stick with this serial (USB enumerates late)
    for _ in $(seq 120); do
        for link in /dev/disk/by-id/usb-*"$1"-0:0; do
            [ -e "$link" ] && readlink -f "$link" && return 0
        done
        sleep 0.5
    done
    return 1
}}
section() {{ echo "@@$1-BEGIN@@"; cat; echo "@@$1-END@@"; }}
refuse() {{  # use device: write to it, and whether its bytes changed
    sync; echo 3 >/proc/sys/vm/drop_caches
    before=$(sha256sum <"$2")
    {usb} write {iso} "$2" --yes >/run/out 2>/run/err; rc=$?
    sync; echo 3 >/proc/sys/vm/drop_caches
    after=$(sha256sum <"$2")
    {{ cat /run/err; echo "rc=$rc"; [ "$before" = "$after" ] && echo untouched=yes; }} \\
        | section "$1"
}}
{find}
echo "0 $(blockdev --getsz "$HELD") linear $HELD 0" | dmsetup create --noudevsync engine-held \\
    || echo "@@SETUP-FAILED dm"
mkswap -q "$SWAP" && swapon "$SWAP" || echo "@@SETUP-FAILED swap"
{mkfs} "$MOUNTED" && mount -o ro "$MOUNTED" /home || echo "@@SETUP-FAILED home"
mkdir -p /run/live/medium
{mkfs} "$LIVE" && mount -o ro "$LIVE" /run/live/medium || echo "@@SETUP-FAILED live"
udevadm settle --timeout=60
{{ {usb} list --json; echo "rc=$?"; }} | section LIST
{refuse}
dmsetup remove --noudevsync engine-held; swapoff "$SWAP"; umount /home /run/live/medium
udevadm settle --timeout=60
{{ {usb} list --json; echo "rc=$?"; }} | section RELEASED
""")
    return path


def section(serial: str, name: str) -> str:
    begin, end = f"@@{name}-BEGIN@@", f"@@{name}-END@@"
    assert begin in serial and end in serial, serial[-4000:]
    return serial.split(begin, 1)[1].split(end, 1)[0].strip()


def listed_serials(serial: str, name: str) -> set[str]:
    listing, _, rc = section(serial, name).rpartition("rc=")
    assert rc.strip() == "0", listing
    return {disk["serial"] for disk in json.loads(listing)}


def test_sticks_in_use_are_refused_and_untouched(tmp_path: Path, tool_initramfs: Path) -> None:
    if not shutil.which("dmsetup"):
        pytest.skip("dmsetup missing (Debian package dmsetup)")
    iso = make_engine_iso(tmp_path, root_img_size=MIB)
    script = guest_script(tmp_path / "refusals.sh", iso)
    vm = tool_guest(script, tool_initramfs, None, workdir=tmp_path / "guest")
    vm.usb = True
    for i, serial in enumerate(STICKS):
        stick = tmp_path / f"stick{i}.raw"
        with open(stick, "wb") as handle:
            handle.truncate(STICK_SIZE)
        vm.extra_args += ["-drive", f"if=none,id=stick{i},format=raw,file={stick}"]
        vm.extra_args += ["-device", f"usb-storage,bus=xhci.0,drive=stick{i},serial={serial}"]
    with vm:
        vm.wait_for(re.escape(DONE) + r"\d+", timeout=GUEST_TIMEOUT)
        vm.wait_exit(120)
    serial = vm.serial_text()
    assert "@@SETUP-FAILED" not in serial, serial[-4000:]
    assert "Traceback" not in serial, serial[-4000:]

    assert listed_serials(serial, "LIST") == {"ENGINE-USB-64"}
    for use, reason in REASONS.items():
        text = section(serial, use)
        errors = [line for line in text.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, text
        expected = rf"error: refusing to write /dev/sd[a-z]: {reason}: name another stick .*"
        assert re.fullmatch(expected, errors[0]), text
        assert "rc=3" in text.splitlines(), text
        assert "untouched=yes" in text.splitlines(), f"{use}: the stick changed\n{text}"
    assert listed_serials(serial, "RELEASED") == set(STICKS)
