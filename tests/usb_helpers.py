"""Small Engine-like ISOs for the engine-usb and medium-check tests (and bench/usb_write.py).

Built with the real tool (xorriso -as mkisofs): Rock Ridge + Joliet, /engine/ with a
manifest written by engine_installer.ondisk.payload.write_manifest, /SHA256SUMS, an El Torito
boot catalog and a hybrid MBR, exactly the layout the real ISO build produces.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from engine_installer.ondisk.payload import write_manifest


def make_engine_tree(root: Path, root_img_size: int = 256 * 1024, seed: int = 1) -> Path:
    """An Engine medium tree with a fake payload; returns root."""
    engine = root / "engine"
    engine.mkdir(parents=True)
    (root / "boot").mkdir()
    (root / "boot" / "eltorito.img").write_bytes(b"\xeb\x3c\x90" + bytes(2045))
    (root / "live").mkdir()
    (root / "live" / "README").write_text("live system files go here\n")
    _random_file(engine / "root.img", root_img_size, seed)
    _random_file(engine / "vmlinuz", 64 * 1024, seed + 1)
    _random_file(engine / "initrd.img", 96 * 1024, seed + 2)
    write_manifest(
        engine,
        {
            "product": "Engine",
            "version": "5.0",
            "build": "test",
            "slot_size": max(root_img_size, 1 << 20),
            "created": "2026-01-01T00:00:00Z",
        },
        {"root": "root.img", "kernel": "vmlinuz", "initrd": "initrd.img"},
    )
    write_sums(root)
    return root


def write_sums(root: Path) -> None:
    lines = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            if rel == "SHA256SUMS":
                continue
            lines.append(f"{hashlib.sha256(full.read_bytes()).hexdigest()}  {rel}\n")
    (root / "SHA256SUMS").write_text("".join(lines))


def build_iso(tree: Path, iso: Path, hybrid: bool = True) -> Path:
    cmd = ["xorriso", "-as", "mkisofs", "-quiet", "-R", "-J", "-V", "ENGINE_TEST"]
    cmd += ["-b", "boot/eltorito.img", "-no-emul-boot", "-c", "boot/boot.catalog"]
    if hybrid:
        cmd.append("--protective-msdos-label")
    cmd += ["-o", str(iso), str(tree)]
    subprocess.run(cmd, check=True, capture_output=True)
    return iso


def make_engine_iso(tmp: Path, name: str = "engine.iso", root_img_size: int = 256 * 1024) -> Path:
    tree = make_engine_tree(tmp / f"{name}.tree", root_img_size)
    return build_iso(tree, tmp / name)


def file_offset_in_iso(iso: Path, rr_path: str) -> int:
    """Byte offset of a file's data inside the ISO (to corrupt exactly that file)."""
    import pycdlib

    reader = pycdlib.PyCdlib()
    reader.open(str(iso))
    try:
        return reader.get_record(rr_path=rr_path).fp_offset
    finally:
        reader.close()


def flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))


def _random_file(path: Path, size: int, seed: int) -> None:
    # Deterministic pseudo-random bytes (fast, no entropy drain): SHAKE-256 of the seed.
    path.write_bytes(hashlib.shake_256(seed.to_bytes(8, "little")).digest(size))
