"""hw-check inside a real QEMU q35 guest (TCG) matches the QEMU lab profiles.

The guest boots the host's Debian kernel with a busybox initramfs, mounts the host's root
read-only over 9p, chroots into it and runs this checkout's `engine-installer hw-check --json`
on the guest's own /sys and /proc: real DMI from QEMU, real cpuinfo without vmx under TCG, a
real AHCI disk. Until the ISO harness boots the live system, this is how the QEMU profiles are
checked against QEMU itself. About 30-60 s per firmware on a 2-core machine.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qemu.harness import TCG_ACCEL

pytestmark = pytest.mark.qemu

REPO = Path(__file__).resolve().parents[2]
KERNEL_RELEASE = platform.release()
MODULES = ["virtio_pci", "9pnet_virtio", "9p", "ahci", "sd_mod"]
BEGIN, END = "@@HWCHECK-BEGIN@@", "@@HWCHECK-END@@"


def _kernel() -> Path | None:
    candidates = sorted(Path("/boot").glob("vmlinuz-*"))
    own = Path(f"/boot/vmlinuz-{KERNEL_RELEASE}")
    kernel = own if own.exists() else (candidates[-1] if candidates else None)
    return kernel


def _release(kernel: Path) -> str:
    return kernel.name.removeprefix("vmlinuz-")


def _module_files(release: str) -> list[Path]:
    """The modules to insmod, dependencies first (resolved with modinfo)."""
    order: list[Path] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)

        def field(name_: str) -> str:
            out = subprocess.run(["modinfo", "-k", release, "-F", name_, name],
                                 capture_output=True, text=True, check=False)  # fmt: skip
            return out.stdout.strip() if out.returncode == 0 else ""

        filename = field("filename")
        if not filename.startswith("/"):
            return  # built into the kernel ("(builtin)") or unknown
        depends = field("depends")
        for dep in filter(None, depends.split(",")):
            visit(dep)
        order.append(Path(filename))

    for name in MODULES:
        visit(name)
    return order


def _initramfs(tmp: Path, release: str) -> Path:
    root = tmp / "initramfs"
    for d in ("bin", "proc", "sys", "dev", "host", "modules"):
        (root / d).mkdir(parents=True)
    shutil.copy2("/bin/busybox", root / "bin/busybox")
    for applet in ("sh", "mount", "insmod", "chroot", "poweroff", "echo", "mkdir", "sleep"):
        (root / "bin" / applet).symlink_to("busybox")
    inserts = []
    for i, module in enumerate(_module_files(release)):
        target = root / "modules" / f"{i:02d}-{module.name}"
        if module.suffix == ".xz":
            target = target.with_suffix("")
            target.write_bytes(subprocess.run(["xz", "-dc", module], capture_output=True,
                                              check=True).stdout)  # fmt: skip
        else:
            shutil.copy2(module, target)
        inserts.append(f"insmod /modules/{target.name}")
    python = Path(sys.executable)  # a path inside the host root, which the guest mounts
    init = f"""#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
{chr(10).join(inserts)}
sleep 1
mount -t 9p -o trans=virtio,version=9p2000.L,ro hostroot /host
mount --bind /proc /host/proc
mount --bind /sys /host/sys
mount --bind /dev /host/dev
echo {BEGIN}
chroot /host /bin/sh -c 'cd {REPO} && ENGINE_HW_PROFILES={REPO}/hw-profiles \\
    {python} -m engine_installer hw-check --json; echo "rc=$?"'
echo {END}
poweroff -f
"""
    (root / "init").write_text(init)
    (root / "init").chmod(0o755)
    image = tmp / "initramfs.cpio"
    files = subprocess.run(["find", "."], cwd=root, capture_output=True, text=True, check=True)
    with open(image, "wb") as out:
        cpio = ["cpio", "-o", "-H", "newc", "--quiet"]
        subprocess.run(cpio, cwd=root, input=files.stdout.encode(), stdout=out, check=True)
    return image


def _boot(tmp: Path, firmware: str) -> str:
    kernel = _kernel()
    assert kernel is not None
    disk = tmp / "disk.raw"
    with open(disk, "wb") as fh:
        fh.truncate(2 * 10**9)  # sparse: 2 GB for the lab profile's 1 GB minimum
    cmd = [
        "qemu-system-x86_64", "-machine", "q35", "-accel", TCG_ACCEL, "-m", "1024", "-smp", "1",
        "-nographic", "-no-reboot", "-serial", "stdio", "-monitor", "none",
        "-kernel", str(kernel), "-initrd", str(_initramfs(tmp, _release(kernel))),
        "-append", "console=ttyS0 panic=-1 quiet",
        "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on",
        "-drive", f"if=none,id=d0,format=raw,file={disk}",
        "-device", "ide-hd,drive=d0,bus=ide.0",
    ]  # fmt: skip
    if firmware == "uefi":
        vars_copy = tmp / "OVMF_VARS.fd"
        shutil.copy2("/usr/share/OVMF/OVMF_VARS_4M.fd", vars_copy)
        cmd += [
            "-drive", "if=pflash,format=raw,unit=0,readonly=on,"
            "file=/usr/share/OVMF/OVMF_CODE_4M.fd",
            "-drive", f"if=pflash,format=raw,unit=1,file={vars_copy}",
        ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    return done.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="reads the host kernel and exports / over 9p")
@pytest.mark.skipif(not shutil.which("qemu-system-x86_64"), reason="qemu-system-x86 missing")
@pytest.mark.parametrize(("firmware", "profile"), [("bios", "qemu-q35-seabios"),
                                                   ("uefi", "qemu-q35-ovmf")])  # fmt: skip
def test_hw_check_in_qemu_matches_the_lab_profile(tmp_path, firmware, profile):
    if _kernel() is None:
        pytest.skip("no kernel in /boot")
    console = _boot(tmp_path, firmware)
    assert BEGIN in console and END in console, console[-3000:]
    body = console.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    text, _, rc = body.rpartition("rc=")
    report = json.loads(text)
    assert rc.strip() == "0", body
    assert report["profile_id"] == profile, body
    assert report["model"].startswith("QEMU Standard PC (Q35 + ICH9, 2009)")
    assert report["verdict"] == "pass", body
    statuses = {i["name"]: i["message"] for i in report["items"]}
    assert statuses["vt-x"] == "VT-x is not available; not required by this lab profile"
    assert statuses["storage"].startswith("internal disk(s) visible: /dev/sda (ahci)")
    assert (
        statuses["firmware"] == f"booted in {'UEFI' if firmware == 'uefi' else 'legacy BIOS'} mode"
    )
