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

from engine_installer.payload import write_manifest

GiB = 1024**3
MiB = 1024**2
VENV_BIN = Path(sys.executable).parent

if os.geteuid() != 0:
    pytest.skip("integration tests need root (loop devices, mounts)", allow_module_level=True)


def run(cmd: list[str], check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=check, **kwargs)


def _cleanup_loop(device: str) -> None:
    # Unmount anything a failed test left mounted from this disk, then drop the partition
    # nodes (BLKPG) before detaching so no stale /dev/loopNpM outlives the device.
    for line in Path("/proc/self/mounts").read_text().splitlines():
        source, target = line.split()[:2]
        if source == device or source.startswith(device + "p"):
            run(["umount", "-l", target], check=False)
    run(["partx", "-d", device], check=False)
    run(["losetup", "-d", device], check=False)


@contextlib.contextmanager
def loop_device(backing: Path, size: int) -> Iterator[str]:
    with open(backing, "wb") as handle:
        handle.truncate(size)
    device = run(["losetup", "--find", "--show", str(backing)]).stdout.strip()
    try:
        yield device
    finally:
        _cleanup_loop(device)


@pytest.fixture
def make_loop(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """make_loop(size=1.2 GiB, name=...) → /dev/loopN, detached at teardown."""
    stack = contextlib.ExitStack()

    def factory(size: int = int(1.2 * GiB), name: str = "disk") -> str:
        backing = tmp_path / f"{name}-{len(stack._exit_callbacks)}.img"
        return stack.enter_context(loop_device(backing, size))

    with stack:
        yield factory


def build_payload(out: Path, version: str, build: str = "1", slot_size: int = 128 * MiB) -> Path:
    """A tiny Engine payload: an ext4 slot image with /boot and /etc/engine-release."""
    root = out / "rootfs"
    (root / "boot").mkdir(parents=True)
    (root / "etc").mkdir()
    kernel = os.urandom(512 * 1024)
    initrd = os.urandom(256 * 1024)
    (root / "boot" / "vmlinuz").write_bytes(kernel)
    (root / "boot" / "initrd.img").write_bytes(initrd)
    (root / "etc" / "engine-release").write_text(f"ENGINE {version} build {build}\n")
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
    lines = ["[install]", f'target = "{target}"', 'eula = "accepted"']
    install.setdefault("action", "auto")
    install.setdefault("keyboard", "us")
    for key, value in install.items():
        lines.append(f"{key} = {json.dumps(value)}")
    if source is not None:
        lines += ["[source]", f'path = "{source}"']
    path.write_text("\n".join(lines) + "\n")
    return path


def engine_installer(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real console script from this venv, as a technician would run it."""
    return run(
        [str(VENV_BIN / "engine-installer"), *args],
        check=False,
        env=dict(os.environ, **(env or {})),
    )
