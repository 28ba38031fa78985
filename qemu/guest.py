"""A tool guest: the host's Debian kernel + a busybox initramfs that runs this checkout inside QEMU.

The initramfs mounts the host's root read-only over 9p, chroots into it (so the guest runs the
very same Python, venv and tools as the host, at the same paths) and runs one shell script
named on the kernel command line (engine.run=/path/on/the/host). Nothing on the host is
writable from the guest: /run is a guest tmpfs, TMPDIR and the installer's log dir live there.
The guest's own disks (AHCI, NVMe) are real QEMU devices, so the installer inside writes a
real disk through a real kernel, and killing QEMU mid-write is a real power cut.

It is the cheapest real guest here: no firmware disk boot, no live system; ~15-30 s to a shell
prompt under TCG on a 2-core machine. The e2e power-cut test and the installer-over-serial
cells use it; the ISO cells use the live system instead.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
from pathlib import Path

from qemu.harness import VM

# Only what the initramfs needs to reach the host root; the rest is modprobed in the chroot
# (the guest kernel is the host's, so the host's /lib/modules fits).
INITRAMFS_MODULES = ["virtio_pci", "9pnet_virtio", "9p"]
APPLETS = ("sh", "mount", "insmod", "chroot", "poweroff", "echo", "mkdir", "sleep", "cat")
DONE = "@@GUEST-DONE rc="


def guest_kernel() -> Path | None:
    own = Path(f"/boot/vmlinuz-{platform.release()}")
    if own.exists():
        return own
    candidates = sorted(Path("/boot").glob("vmlinuz-*"))
    return candidates[-1] if candidates else None


def _module_files(release: str, names: list[str]) -> list[Path]:
    """The modules to insmod, dependencies first (resolved with modinfo)."""
    order: list[Path] = []
    seen: set[str] = set()

    def field(name: str, key: str) -> str:
        out = subprocess.run(["modinfo", "-k", release, "-F", key, name],
                             capture_output=True, text=True, check=False)  # fmt: skip
        return out.stdout.strip() if out.returncode == 0 else ""

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        filename = field(name, "filename")
        if not filename.startswith("/"):
            return  # built in
        for dep in filter(None, field(name, "depends").split(",")):
            visit(dep)
        order.append(Path(filename))

    for name in names:
        visit(name)
    return order


INIT = """#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
{inserts}
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose hostroot /host || echo "9p failed"
for d in proc sys dev; do mount --bind /$d /host/$d; done
mount -t tmpfs tmpfs /host/run
script=""
for arg in $(cat /proc/cmdline); do
    case "$arg" in engine.run=*) script="${{arg#engine.run=}}" ;; esac
done
echo "@@GUEST-UP"
chroot /host /bin/sh -c "mkdir -p /run/tmp /run/log; export TMPDIR=/run/tmp \\
    ENGINE_INSTALLER_LOG_DIR=/run/log PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/run; \\
    /bin/sh $script; echo {done}\\$?"
poweroff -f
"""


def build_initramfs(workdir: Path, kernel: Path) -> Path:
    """The tool guest's initramfs (a few MB; built in ~1 s)."""
    release = kernel.name.removeprefix("vmlinuz-")
    root = workdir / "initramfs"
    if root.exists():
        shutil.rmtree(root)
    for d in ("bin", "proc", "sys", "dev", "host", "modules"):
        (root / d).mkdir(parents=True)
    shutil.copy2("/bin/busybox", root / "bin/busybox")
    for applet in APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    inserts = []
    for i, module in enumerate(_module_files(release, INITRAMFS_MODULES)):
        target = root / "modules" / f"{i:02d}-{module.name}"
        if module.suffix == ".xz":
            target = target.with_suffix("")
            data = subprocess.run(["xz", "-dc", module], capture_output=True, check=True).stdout
            target.write_bytes(data)
        else:
            shutil.copy2(module, target)
        inserts.append(f"insmod /modules/{target.name}")
    (root / "init").write_text(INIT.format(inserts="\n".join(inserts), done=DONE))
    (root / "init").chmod(0o755)
    image = workdir / "tool-initramfs.cpio"
    files = subprocess.run(["find", "."], cwd=root, capture_output=True, text=True, check=True)
    with open(image, "wb") as out:
        subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=root,
                       input=files.stdout.encode(), stdout=out, check=True)  # fmt: skip
    shutil.rmtree(root)
    return image


def tool_guest(
    script: Path,
    initramfs: Path,
    disk: Path | None,
    *,
    workdir: Path,
    disk_format: str = "raw",
    nvme: bool = False,
    sector_size: int = 512,
    firmware: str = "bios",
    memory_mb: int = 1024,
    fw_cfg: dict[str, Path] | None = None,
    extra_append: str = "",
    cache: str = "unsafe",
) -> VM:
    """A VM that runs `script` (a host path, run with /bin/sh in the chroot) and powers off."""
    kernel = guest_kernel()
    if kernel is None:
        raise FileNotFoundError("no kernel in /boot: install linux-image-amd64")
    return VM(
        disk=disk,
        firmware=firmware,
        bus="nvme" if nvme or sector_size != 512 else "ahci",
        logical_block_size=sector_size,
        memory_mb=memory_mb,
        workdir=workdir,
        no_reboot=True,
        disk_format=disk_format,
        kernel=kernel,
        initrd=initramfs,
        append=f"console=ttyS0 panic=-1 quiet loglevel=1 engine.run={script} {extra_append}",
        virtfs=[(Path("/"), "hostroot")],
        fw_cfg=dict(fw_cfg or {}),
        cache=cache,
    )
