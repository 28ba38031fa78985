"""engine-usb inside a QEMU guest (TCG) with virtual USB sticks on an xHCI controller.

The writing VM is a tool guest, not the Engine live system: it boots the host's Debian kernel
with a busybox initramfs, mounts the host's root read-only over 9p, starts udev, and runs this
checkout's engine-usb against the guest's own kernel. The sticks are really on USB to sysfs and
udev (usb-storage on qemu-xhci), so `list` must show them with their USB serials.

- test_usb_sticks_listed_written_pulled_and_booted (about 45 s): `write` puts a small stand-in
  Engine ISO (tests/usb_helpers) on two sticks in parallel (named by their udev
  /dev/disk/by-id/usb-* links) through the real USB/SCSI stack with O_DIRECT, and the host pulls
  one of them out of the virtual USB port (QMP device_del) mid-write: that one fails with a clear
  message and keeps no old first or last MiB, the other is written and verified, and the host
  checks both image files. A third
  stick gets a small GRUB hybrid image (--force) and boots in a second VM from USB (SeaBIOS).
- test_engine_iso_written_to_a_blank_stick_boots_the_installer (needs the real installer ISO,
  the `installer_iso` session fixture; about 80 s): a blank stick is listed, the real Engine
  ISO is written to it WITHOUT --force (so it passes engine-usb's Engine-ISO and full medium
  checks), and a second VM boots that stick (usb-storage on xHCI, SeaBIOS) through GRUB's menu
  to the installer's first screen on the serial console.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from qemu.console import SerialConsole
from qemu.harness import TCG_ACCEL, VM
from tests.usb_helpers import make_engine_iso

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(os.geteuid() != 0, reason="reads the host kernel, exports / over 9p"),
    pytest.mark.skipif(not shutil.which("qemu-system-x86_64"), reason="qemu-system-x86 missing"),
]

REPO = Path(__file__).resolve().parents[2]
MODULES = ["virtio_pci", "9pnet_virtio", "9p", "xhci_pci", "usb_storage", "sd_mod"]
SERIAL = "ENGINE-USB-42"
SERIAL2 = "ENGINE-USB-43"
SERIAL3 = "ENGINE-USB-44"
STICK_SIZE = 128 * 1024 * 1024
BOOTED = "ENGINE-USB-STICK-BOOTED"
MIB = 1024 * 1024


def _kernel() -> Path | None:
    candidates = sorted(Path("/boot").glob("vmlinuz-*"))
    return candidates[-1] if candidates else None


def _modinfo(release: str, field: str, name: str) -> str:
    out = subprocess.run(
        ["modinfo", "-k", release, "-F", field, name], capture_output=True, text=True, check=False
    )
    return out.stdout.strip() if out.returncode == 0 else ""


def _module_files(release: str) -> list[Path]:
    """The modules to insmod, dependencies first."""
    order: list[Path] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        filename = _modinfo(release, "filename", name)
        if not filename.startswith("/"):
            return  # built in
        for dep in filter(None, _modinfo(release, "depends", name).split(",")):
            visit(dep)
        order.append(Path(filename))

    for name in MODULES:
        visit(name)
    return order


def _initramfs(tmp: Path, release: str, guest_script: str) -> Path:
    root = tmp / "initramfs"
    for d in ("bin", "proc", "sys", "dev", "host", "modules"):
        (root / d).mkdir(parents=True)
    shutil.copy2("/bin/busybox", root / "bin/busybox")
    for applet in ("sh", "mount", "insmod", "chroot", "poweroff", "echo", "sleep"):
        (root / "bin" / applet).symlink_to("busybox")
    inserts = []
    for i, module in enumerate(_module_files(release)):
        target = root / "modules" / f"{i:02d}-{module.name.removesuffix('.xz')}"
        if module.suffix == ".xz":
            xz = subprocess.run(["xz", "-dc", module], capture_output=True, check=True)
            target.write_bytes(xz.stdout)
        else:
            shutil.copy2(module, target)
        inserts.append(f"insmod /modules/{target.name}")
    (root / "guest.sh").write_text(guest_script)
    init = f"""#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
{chr(10).join(inserts)}
sleep 2
mount -t 9p -o trans=virtio,version=9p2000.L,ro hostroot /host
mount --bind /proc /host/proc
mount --bind /sys /host/sys
mount --bind /dev /host/dev
mount -t tmpfs tmpfs /host/run
chroot /host /bin/sh {tmp / "guest.sh"}
poweroff -f
"""
    (root / "init").write_text(init)
    (root / "init").chmod(0o755)
    (tmp / "guest.sh").write_text(guest_script)  # the guest reads it through 9p
    image = tmp / "initramfs.cpio"
    files = subprocess.run(["find", "."], cwd=root, capture_output=True, text=True, check=True)
    with open(image, "wb") as out:
        cpio = ["cpio", "-o", "-H", "newc", "--quiet"]
        subprocess.run(cpio, cwd=root, input=files.stdout.encode(), stdout=out, check=True)
    return image


def _section(console: str, name: str) -> str:
    begin, end = f"@@{name}-BEGIN@@", f"@@{name}-END@@"
    assert begin in console and end in console, console[-4000:]
    return console.split(begin, 1)[1].split(end, 1)[0].strip()


def _bootable_image(tmp: Path) -> Path | None:
    """A small hybrid ISO that really boots from USB (GRUB prints a marker and halts); it
    stands in for the Engine ISO, whose build lives elsewhere, so it is written with --force."""
    if not shutil.which("grub-mkrescue"):
        return None
    tree = tmp / "grub-tree"
    (tree / "boot" / "grub").mkdir(parents=True)
    (tree / "boot" / "grub" / "grub.cfg").write_text(
        "serial --unit=0 --speed=115200\nterminal_output serial console\n" f"echo {BOOTED}\nhalt\n"
    )
    image = tmp / "bootable.iso"
    done = subprocess.run(
        ["grub-mkrescue", "-o", str(image), str(tree)], capture_output=True, check=False
    )
    return image if done.returncode == 0 else None


def _stick(path: Path, junk: bytes) -> Path:
    """A blank-ish stick: junk in the first and the last MiB (a stale backup GPT)."""
    with open(path, "wb") as handle:
        handle.write(junk * MIB)
        handle.truncate(STICK_SIZE)
        handle.seek(STICK_SIZE - MIB)
        handle.write(junk * MIB)
    return path


def _qmp(sock: Path, command: str, **arguments) -> None:
    """One command on QEMU's machine protocol (the host's hand on the virtual USB port)."""
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(str(sock))
        reader = conn.makefile("r")
        reader.readline()  # greeting
        for message in ({"execute": "qmp_capabilities"}, {"execute": command, **arguments}):
            conn.sendall(json.dumps(message).encode() + b"\n")
            while "return" not in (reply := json.loads(reader.readline())):
                assert "error" not in reply, reply


def _run_guest(cmd: list[str], qmp_sock: Path, victim: str) -> str:
    """Run the guest, pulling the victim stick out when the guest says @@PULL-NOW@@."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killer = threading.Timer(900, proc.kill)
    killer.start()
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if "@@PULL-NOW@@" in line and not line.startswith("echo"):
                _qmp(qmp_sock, "device_del", arguments={"id": victim})
        proc.wait()
    finally:
        killer.cancel()
    return "".join(lines)


def test_usb_sticks_listed_written_pulled_and_booted(tmp_path: Path) -> None:
    kernel = _kernel()
    if kernel is None:
        pytest.skip("no kernel in /boot")
    bootable = _bootable_image(tmp_path)
    if bootable is None:
        pytest.skip("grub-mkrescue cannot build a bootable image here")
    # Big enough that the write is still running when the host pulls the third stick.
    iso = make_engine_iso(tmp_path, root_img_size=96 * MIB)
    sticks = [_stick(tmp_path / f"stick{i}.raw", bytes([0xA5 + i])) for i in range(3)]
    engine_usb = Path(sys.executable).with_name("engine-usb")
    by_id = "/dev/disk/by-id/usb-*{}-0:0"
    guest = f"""export TMPDIR=/run PYTHONDONTWRITEBYTECODE=1 SYSTEMD_IGNORE_CHROOT=1
cd {REPO}
/lib/systemd/systemd-udevd --daemon >/dev/null 2>&1 && udevadm trigger --action=add && \\
    udevadm settle --timeout=60
echo @@LIST-BEGIN@@
{engine_usb} list --json; echo "rc=$?"
echo @@LIST-END@@
echo @@UDEV-BEGIN@@
for d in /sys/block/sd*; do
    udevadm info --query=property --name=/dev/${{d##*/}} | grep -E '^ID_(BUS|SERIAL_SHORT)='
done
echo @@UDEV-END@@
{engine_usb} write {iso} {by_id.format(SERIAL)} {by_id.format(SERIAL3)} --yes --json \\
    >/run/write.json 2>/run/write.err &
PID=$!
until grep -q '"phase": "writing"' /run/write.json 2>/dev/null; do sleep 0.05; done
echo @@PULL-NOW@@
wait $PID; RC=$?
echo @@WRITE-BEGIN@@
grep '"result"' /run/write.json; echo "rc=$RC"
echo @@WRITE-END@@
echo @@FORCE-BEGIN@@
{engine_usb} write --force {bootable} {by_id.format(SERIAL2)} --yes; echo "rc=$?"
echo @@FORCE-END@@
"""
    qmp_sock = tmp_path / "qmp.sock"
    cmd = [
        "qemu-system-x86_64", "-machine", "q35", "-accel", TCG_ACCEL, "-m", "1024", "-smp", "1",
        "-nographic", "-no-reboot", "-serial", "stdio", "-monitor", "none",
        "-qmp", f"unix:{qmp_sock},server=on,wait=off",
        "-kernel", str(kernel),
        "-initrd", str(_initramfs(tmp_path, kernel.name.removeprefix("vmlinuz-"), guest)),
        "-append", "console=ttyS0 panic=-1 quiet",
        "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on",
        "-device", "qemu-xhci,id=xhci",
    ]  # fmt: skip
    for i, serial in enumerate((SERIAL, SERIAL2, SERIAL3)):
        removable = ",removable=on" if i == 0 else ""
        cmd += ["-drive", f"if=none,id=stick{i},format=raw,file={sticks[i]}"]
        cmd += ["-device", f"usb-storage,id=usb{i},bus=xhci.0,drive=stick{i},serial={serial}"]
        cmd[-1] += removable
    console = _run_guest(cmd, qmp_sock, victim="usb2")

    # list: the virtual sticks, really on USB, with their USB serials.
    listing, _, rc = _section(console, "LIST").rpartition("rc=")
    assert rc.strip() == "0", listing
    listed = {disk["serial"]: disk for disk in json.loads(listing)}
    assert set(listed) == {SERIAL, SERIAL2, SERIAL3}, listing
    assert all(disk["bus"] == "usb" and disk["size"] == STICK_SIZE for disk in listed.values())
    assert listed[SERIAL]["removable"] is True
    assert "QEMU" in f"{listed[SERIAL]['vendor']} {listed[SERIAL]['model']}"
    udev = _section(console, "UDEV").split()
    assert udev.count("ID_BUS=usb") == 3 and f"ID_SERIAL_SHORT={SERIAL}" in udev

    # write to two sticks named by their udev by-id links; the host pulls one out mid-write:
    # that one fails with a clear message, the other is written and verified.
    written, _, rc = _section(console, "WRITE").rpartition("rc=")
    assert rc.strip() == "1", written
    results = {r["serial"]: r for r in map(json.loads, written.splitlines())}
    assert results[SERIAL]["ok"] is True, results
    assert results[SERIAL3]["ok"] is False
    assert "pulled out or is faulty" in results[SERIAL3]["message"], results[SERIAL3]
    data = sticks[0].read_bytes()
    size = iso.stat().st_size
    assert data[:size] == iso.read_bytes()
    assert data[-MIB:] == bytes(MIB), "the stale backup GPT in the last MiB is cleared"
    pulled = sticks[2].read_bytes()
    # Its old first and last MiB were zeroed before the body was written, and the new first
    # MiB never was: a stick pulled mid-write cannot boot, nor look bootable.
    assert pulled[:MIB] == bytes(MIB), "pulled: the old first MiB is gone"
    assert pulled[-MIB:] == bytes(MIB), "pulled: the stale last MiB is gone"

    # The second stick, written with a bootable hybrid image, boots in a second VM (SeaBIOS
    # from USB).
    forced, _, rc = _section(console, "FORCE").rpartition("rc=")
    assert rc.strip() == "0", forced
    boot = [
        "qemu-system-x86_64", "-machine", "q35", "-accel", TCG_ACCEL, "-m", "256",
        "-nographic", "-no-reboot", "-serial", "stdio", "-monitor", "none",
        "-device", "qemu-xhci,id=xhci",
        "-drive", f"if=none,id=stick,format=raw,file={sticks[1]}",
        "-device", "usb-storage,bus=xhci.0,drive=stick,bootindex=0",
    ]  # fmt: skip
    booted = subprocess.run(boot, capture_output=True, text=True, timeout=300).stdout
    assert BOOTED in booted, booted[-2000:]


def _tool_guest_cmd(tmp: Path, kernel: Path, guest: str, sticks: list[tuple[Path, str]]) -> list:
    """The writing VM: host kernel, busybox initramfs, host root over 9p, sticks on xHCI."""
    cmd = [
        "qemu-system-x86_64", "-machine", "q35", "-accel", TCG_ACCEL, "-m", "1024", "-smp", "1",
        "-nographic", "-no-reboot", "-serial", "stdio", "-monitor", "none",
        "-kernel", str(kernel),
        "-initrd", str(_initramfs(tmp, kernel.name.removeprefix("vmlinuz-"), guest)),
        "-append", "console=ttyS0 panic=-1 quiet",
        "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on",
        "-device", "qemu-xhci,id=xhci",
    ]  # fmt: skip
    for i, (stick, serial) in enumerate(sticks):
        cmd += ["-drive", f"if=none,id=stick{i},format=raw,file={stick}"]
        cmd += ["-device", f"usb-storage,id=usb{i},bus=xhci.0,drive=stick{i},serial={serial}"]
    return cmd


ENGINE_SERIAL = "ENGINE-USB-50"
SCREEN1 = "Install Engine on this laptop"  # the installer's first screen (see test_matrix)


def test_engine_iso_written_to_a_blank_stick_boots_the_installer(
    tmp_path: Path, installer_iso: Path
) -> None:
    kernel = _kernel()
    if kernel is None:
        pytest.skip("no kernel in /boot")
    size = installer_iso.stat().st_size
    stick_size = (size // MIB + 64) * MIB  # a stick a little bigger than the ISO
    stick = tmp_path / "blank-stick.raw"
    with open(stick, "wb") as handle:  # blank: all zeros, as from the shop
        handle.truncate(stick_size)
    engine_usb = Path(sys.executable).with_name("engine-usb")
    device = f"/dev/disk/by-id/usb-*{ENGINE_SERIAL}-0:0"
    guest = f"""export TMPDIR=/run PYTHONDONTWRITEBYTECODE=1 SYSTEMD_IGNORE_CHROOT=1
cd {REPO}
/lib/systemd/systemd-udevd --daemon >/dev/null 2>&1 && udevadm trigger --action=add && \\
    udevadm settle --timeout=60
echo @@LIST-BEGIN@@
{engine_usb} list --json; echo "rc=$?"
echo @@LIST-END@@
{engine_usb} write {installer_iso} {device} --yes --json >/run/write.json 2>/run/write.err
RC=$?
echo @@WRITE-BEGIN@@
grep '"result"' /run/write.json; echo "rc=$RC"
echo @@WRITE-END@@
cat /run/write.err
"""
    cmd = _tool_guest_cmd(tmp_path, kernel, guest, [(stick, ENGINE_SERIAL)])
    started = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    console = done.stdout
    write_s = time.monotonic() - started

    # list: the blank stick, really on USB to udev, with its USB serial.
    listing, _, rc = _section(console, "LIST").rpartition("rc=")
    assert rc.strip() == "0", listing
    (disk,) = json.loads(listing)
    assert (disk["serial"], disk["bus"], disk["size"]) == (ENGINE_SERIAL, "usb", stick_size)

    # write: the real Engine ISO, no --force, written and verified.
    written, _, rc = _section(console, "WRITE").rpartition("rc=")
    assert rc.strip() == "0", console[-3000:]
    (result,) = map(json.loads, written.splitlines())
    assert result["ok"] is True and result["serial"] == ENGINE_SERIAL, result
    with open(stick, "rb") as a, open(installer_iso, "rb") as b:
        while chunk := b.read(16 * MIB):
            assert a.read(len(chunk)) == chunk, "the stick does not hold the ISO"

    # boot: a second VM (SeaBIOS; the stick first in the boot order, a blank disk second)
    # boots the stick to screen 1.
    (tmp_path / "boot").mkdir()
    laptop = tmp_path / "laptop.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(laptop), "8G"], check=True)
    vm = VM(disk=laptop, disk_format="qcow2", firmware="bios", memory_mb=2048,
            workdir=tmp_path / "boot", extra_args=[
                "-device", "qemu-xhci,id=xhci",
                "-drive", f"if=none,id=stick,format=raw,file={stick},cache=unsafe",
                "-device", "usb-storage,bus=xhci.0,drive=stick,removable=on,bootindex=0",
            ])  # fmt: skip
    started = time.monotonic()
    with vm:
        SerialConsole(vm).boot_highlighted_entry(600)  # GRUB's menu, from the stick
        vm.wait_for(SCREEN1, timeout=600)
        text = vm.serial_text()
    boot_s = time.monotonic() - started
    assert "Traceback" not in text
    print(f"\nwrite VM {write_s:.0f} s (ISO {size / MIB:.0f} MiB), stick boot to screen 1 "
          f"{boot_s:.0f} s (TCG)")  # fmt: skip
