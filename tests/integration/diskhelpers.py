"""Fixtures for the disk backend on real loop devices (root only).

Every loop device is created here from a sparse file under tmp_path and always detached
(its partition nodes removed first), so parallel engineers' loop devices are never touched.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine_installer.ondisk.payload import write_manifest
from qemu import disks as qemu_disks
from qemu import loops

GiB = 1024**3
MiB = 1024**2
VENV_BIN = Path(sys.executable).parent

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items) -> None:
    """Without root, every test in this directory is skipped (loop devices, mounts)."""
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="integration tests need root (loop devices, mounts)")
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(skip)


def run(cmd: list[str], check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=check, **kwargs)


@contextlib.contextmanager
def loop_device(backing: Path, size: int) -> Iterator[str]:
    """A loop device over a new sparse file of size bytes, detached afterwards."""
    with open(backing, "wb") as handle:
        handle.truncate(size)
    with loops.loop_device(backing, loops.INTEGRATION, partitions=False) as device:
        yield device


@pytest.fixture
def make_loop(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """make_loop(size=1.2 GiB, name=...) → /dev/loopN, detached at teardown."""
    stack = contextlib.ExitStack()

    def factory(size: int = int(1.2 * GiB), name: str = "disk") -> str:
        backing = tmp_path / f"{name}-{len(stack._exit_callbacks)}.img"
        return stack.enter_context(loop_device(backing, size))

    with stack:
        yield factory


def build_payload(out: Path, version: str, build: str = "1", slot_size: int = 64 * MiB) -> Path:
    """A tiny Engine payload: an ext4 slot image with /boot and /etc/engine-release."""
    root = out / "rootfs"
    (root / "boot").mkdir(parents=True)
    (root / "etc").mkdir()
    kernel = os.urandom(512 * 1024)
    initrd = os.urandom(256 * 1024)
    (root / "boot" / "vmlinuz").write_bytes(kernel)
    (root / "boot" / "initrd.img").write_bytes(initrd)
    (root / "etc" / "engine-release").write_text(
        f"PRODUCT=Engine\nVERSION={version}\nBUILD={build}\n"
    )
    payload = out / "engine"
    payload.mkdir()
    (payload / "vmlinuz").write_bytes(kernel)
    (payload / "initrd.img").write_bytes(initrd)
    run(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-L",
            "engine-root",
            "-d",
            str(root),
            str(payload / "root.img"),
            "24M",
        ]
    )
    write_manifest(
        payload,
        {
            "product": "Engine",
            "version": version,
            "build": build,
            "slot_size": slot_size,
            "created": "2026-01-01T00:00:00Z",
        },
        {"root": "root.img", "kernel": "vmlinuz", "initrd": "initrd.img"},
    )
    return payload


@pytest.fixture(scope="session")
def payloads(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("payloads")
    result = {}
    for version, build in (("4.5", "45"), ("5.0", "50"), ("5.1", "51")):
        (base / version).mkdir()
        result[version] = build_payload(base / version, version, build)
    return result


@pytest.fixture(autouse=True)
def log_dir(tmp_path: Path, monkeypatch) -> Path:
    path = tmp_path / "logs"
    monkeypatch.setenv("ENGINE_INSTALLER_LOG_DIR", str(path))
    return path


def device_sha256(device: str) -> str:
    digest = hashlib.sha256()
    with open(device, "rb") as handle:
        while block := handle.read(16 * MiB):
            digest.update(block)
    return digest.hexdigest()


def write_answers(path: Path, target: str, source: Path | None, **install) -> Path:
    install.setdefault("kernel_args", [])
    return qemu_disks.answer_file(path, target, source, **install)


def engine_installer(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real console script from this venv, as a technician would run it."""
    return run(
        [str(VENV_BIN / "engine-installer"), *args],
        check=False,
        env=dict(os.environ, **(env or {})),
    )


def part(disk: str, number: int) -> str:
    return f"{disk}p{number}"


def esp_file(disk: str, path: str) -> bytes | None:
    """Read a file from the ESP with mtools (an independent reader; no vfat mount needed)."""
    proc = subprocess.run(
        ["mcopy", "-n", "-i", part(disk, 2), f"::{path}", "-"],
        capture_output=True,
        env=dict(os.environ, MTOOLS_SKIP_CHECK="1"),
        check=False,
    )
    return proc.stdout if proc.returncode == 0 else None


def grubenv(disk: str, tmp: Path) -> dict[str, str]:
    """`grub-editenv FILE list` on the ESP's grubenv (copied out with mtools)."""
    data = esp_file(disk, "boot/grub/grubenv")
    assert data is not None, "no boot/grub/grubenv on the ESP"
    local = tmp / "grubenv"
    local.write_bytes(data)
    out = run(["grub-editenv", str(local), "list"]).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def marker(disk: str) -> dict:
    """The newest copy of the install marker (two copies, each with a sequence number)."""
    copies = []
    for path in ("engine/install.json", "engine/install.2.json"):
        data = esp_file(disk, path)
        if data is not None:
            copies.append(json.loads(data))
    assert copies, "no install marker on the ESP"
    return max(copies, key=lambda m: m.get("seq", 0))


def slot_options(disk: str, slot: str) -> dict[str, str]:
    """The per-slot boot options on the ESP (kernel arguments, keymap)."""
    from engine_installer.ondisk.bootenv import parse_grubenv

    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    path = f"::boot/grub/slot-{slot}.env"
    raw = subprocess.run(
        ["mcopy", "-n", "-i", part(disk, 2), path, "-"], capture_output=True, env=env, check=True
    ).stdout
    return parse_grubenv(raw)


def slot_release(disk: str, slot: str) -> str:
    number = {"A": 3, "B": 4}[slot]
    return run(["debugfs", "-R", "cat /etc/engine-release", part(disk, number)]).stdout.strip()


def check_disk_tools(disk: str) -> None:
    """The independent tools a technician would use all agree the disk is sound."""
    sgdisk = run(["sgdisk", "-v", disk], check=False)
    assert sgdisk.returncode == 0 and "No problems found" in sgdisk.stdout, sgdisk.stdout
    fsck = run(["fsck.vfat", "-n", part(disk, 2)], check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    e2fsck = run(["e2fsck", "-fn", part(disk, 5)], check=False)
    assert e2fsck.returncode == 0, e2fsck.stdout + e2fsck.stderr


@contextlib.contextmanager
def mounted(device: str, readonly: bool = False) -> Iterator[Path]:
    import tempfile

    target = Path(tempfile.mkdtemp(prefix="test-mnt-"))
    run(["mount", "-o", "ro" if readonly else "rw", device, str(target)])
    try:
        yield target
    finally:
        run(["umount", str(target)])
        target.rmdir()


def add_vms(disk: str, vms: dict[str, tuple[str, str]]) -> None:
    """Put VMs (name → (kind, published_for)) with a disk image each onto storage."""
    qemu_disks.add_vms(disk, vms)


def tree_hashes(disk: str) -> dict[str, str]:
    """path → SHA-256 of every VM file on the storage partition."""
    return qemu_disks.storage_hashes(disk)
