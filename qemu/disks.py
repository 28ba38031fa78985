"""Host-side disk preparation for the end-to-end tests (root: loop devices).

The fast way to get "a laptop disk with Engine 4.5 and VM files": run the real unattended
installer (`engine-installer --answers`) on the host against a loop device over a sparse raw
image, then put VM folders onto its storage partition. The image is then attached to a VM.

Loop devices come from qemu/loops.py, in the e2e tier's own range, always detached.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from qemu import loops

MiB = 1024**2
GiB = 1024**3
DISK_SIZE = 1200 * MiB  # the sample Engine's 256 MiB slots + ESP + a little storage
STORAGE_PART = 5
# name → (kind, published_for): PV drivers <published_for>.0, older than the 5.0 medium's, so
# local and custom VMs need a manual PV-driver upgrade after an upgrade; shared ones do not.
SAMPLE_VMS = {
    "office-desktop": ("shared", "4.5"),
    "build-box": ("custom", "4.5"),
    "alice-laptop": ("local", "4.5"),
}


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=True, **kwargs)


def installer_command() -> list[str]:
    """This checkout's engine-installer, run with the test's Python."""
    return [sys.executable, "-m", "engine_installer"]


def answer_file(path: Path, target: str, source: Path | None, **install) -> Path:
    """An answer file for the tests. lab_override: the test machines (CI hosts, QEMU under
    TCG) have no VT-x, so the hardware check fails on them, as it should."""
    lines = ["[install]", f'target = "{target}"', 'eula = "accepted"']
    install.setdefault("action", "auto")
    install.setdefault("keyboard", "us")
    install.setdefault("kernel_args", ["console=ttyS0"])
    install.setdefault("lab_override", True)
    lines += [f"{key} = {json.dumps(value)}" for key, value in install.items()]
    if source is not None:
        lines += ["[source]", f'path = "{source}"']
    path.write_text("\n".join(lines) + "\n")
    return path


def install_on_image(
    image: Path,
    payload: Path,
    *,
    size: int = DISK_SIZE,
    sector_size: int = 512,
    vms: dict[str, tuple[str, str]] | None = None,
    action: str = "install",
) -> dict[str, str]:
    """Install Engine from payload onto a (new, sparse) raw image with the real unattended
    installer, then add VM folders. Returns the VM files' SHA-256 (see vm_hashes)."""
    if not image.exists():
        with open(image, "wb") as handle:
            handle.truncate(size)
    with (
        loops.loop_device(image, loops.E2E, sector_size) as device,
        tempfile.TemporaryDirectory() as tmp,
    ):
        answers = answer_file(Path(tmp) / "answers.toml", device, payload, action=action)
        env = dict(os.environ, ENGINE_INSTALLER_LOG_DIR=tmp)
        proc = subprocess.run(
            [*installer_command(), "--answers", str(answers)],
            capture_output=True, text=True, env=env, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"host-side install failed:\n{proc.stdout}\n{proc.stderr}")
        subprocess.run(["partx", "-a", device], capture_output=True, check=False)
        if vms:
            add_vms(device, vms)
        return storage_hashes(device)


def add_vms(device: str, vms: dict[str, tuple[str, ...]], seed: int = 0) -> None:
    """VM folders (vm.json + a 3 MiB disk image of seeded pseudo-random bytes) on storage.

    vms: name → (kind, published_for[, pv_driver]); PV drivers default to <published_for>.0."""
    import random

    rng = random.Random(seed)
    with _mounted(f"{device}p{STORAGE_PART}") as root:
        for name, (kind, published, *driver) in vms.items():
            folder = root / "vms" / name
            folder.mkdir(parents=True)
            pv = driver[0] if driver else f"{published}.0"
            (folder / "vm.json").write_text(
                json.dumps(
                    {"name": name, "kind": kind, "published_for": published, "pv_driver": pv}
                )
            )
            (folder / "disk.img").write_bytes(rng.randbytes(3 * MiB))
        subprocess.run(["sync"], check=False)


@contextlib.contextmanager
def _mounted(device: str, readonly: bool = False) -> Iterator[Path]:
    target = Path(tempfile.mkdtemp(prefix="e2e-mnt-"))
    _run(["mount", "-o", "ro" if readonly else "rw", device, str(target)])
    try:
        yield target
    finally:
        _run(["umount", str(target)])
        target.rmdir()


def storage_hashes(device: str) -> dict[str, str]:
    """path → SHA-256 of every file under vms/ on the storage partition (read-only mount)."""
    with _mounted(f"{device}p{STORAGE_PART}", readonly=True) as root:
        base = root / "vms"
        if not base.exists():
            return {}
        return {
            str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(base.rglob("*"))
            if p.is_file()
        }


def vm_hashes(image: Path, sector_size: int = 512) -> dict[str, str]:
    """The VM files' SHA-256 on a raw disk image (or a qcow2 converted first by the caller)."""
    with loops.loop_device(image, loops.E2E, sector_size) as device:
        return storage_hashes(device)


def storage_files(image: Path, folder: str, sector_size: int = 512) -> dict[str, bytes]:
    """name → bytes of the files in one folder of a raw disk image's storage partition."""
    with (
        loops.loop_device(image, loops.E2E, sector_size) as device,
        _mounted(f"{device}p{STORAGE_PART}", readonly=True) as root,
    ):
        base = root / folder
        if not base.is_dir():
            return {}
        return {p.name: p.read_bytes() for p in sorted(base.iterdir()) if p.is_file()}


def flatten(image: Path, out: Path) -> Path:
    """A raw copy of a (qcow2) image, for host-side inspection with loop devices."""
    _run(["qemu-img", "convert", "-O", "raw", str(image), str(out)])
    return out


def esp_file(image: Path, path: str, sector_size: int = 512) -> bytes | None:
    """A file from the image's ESP (partition 2), read with mtools (no vfat mount needed)."""
    with loops.loop_device(image, loops.E2E, sector_size) as device:
        proc = subprocess.run(
            ["mcopy", "-n", "-i", f"{device}p2", f"::{path}", "-"],
            capture_output=True, env=dict(os.environ, MTOOLS_SKIP_CHECK="1"), check=False,
        )  # fmt: skip
        return proc.stdout if proc.returncode == 0 else None
