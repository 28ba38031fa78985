"""Bench: pycdlib assembly (engine-iso's iso_image.assemble) vs `xorriso -as mkisofs` of the
same tree with the same boot images, in one run. Target: pycdlib ≤ 1.2x xorriso.

    .venv/bin/python bench/iso_build.py [--tree DIR] [--size-mb 256] [--runs 3]

Without --tree a tree like the real medium is made: a large squashfs-sized file, an initrd, a
kernel, a payload, and a few hundred small files. Both tools write to the same directory;
median wall-clock time of --runs runs each, alternating, so page cache favours neither.
pycdlib's time includes /SHA256SUMS (hashing every file) and the hybrid MBR; xorriso's does
not hash.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine_installer.iso import bootloader, builder, iso_image  # noqa: E402
from engine_installer.iso.hybrid_mbr import BOOT_HYBRID  # noqa: E402

EPOCH = 1_700_000_000


def make_tree(root: Path, size_mb: int) -> None:
    rng = os.urandom
    sizes = {
        "live/filesystem.squashfs": size_mb * 70 // 100,
        "live/initrd.img": size_mb * 13 // 100,
        "engine/root.img": size_mb * 10 // 100,
        "live/vmlinuz": max(1, size_mb * 3 // 100),
        "engine/vmlinuz": max(1, size_mb * 3 // 100),
    }
    for rel, mb in sizes.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            for _ in range(mb):
                handle.write(rng(1024 * 1024))
    for index in range(300):
        path = root / "docs" / f"d{index // 50}" / f"file{index}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng(100 + index * 37))
    (root / "engine/manifest.json").write_text("{}\n")


def tree_files(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}


def run_pycdlib(tree: Path, boot: bootloader.BootImages, out: Path) -> float:
    files: dict[str, Path | bytes] = dict(tree_files(tree))
    files[builder.BIOS_BOOT] = boot.bios_image.read_bytes()
    files[builder.EFI_BOOT] = boot.efi_image
    start = time.perf_counter()
    iso_image.assemble(out, files, volume_id="BENCH", bios_boot=builder.BIOS_BOOT,
                       efi_boot=builder.EFI_BOOT, boot_catalog=builder.BOOT_CATALOG,
                       epoch=EPOCH, disk_signature=b"\x01\x02\x03\x04")  # fmt: skip
    return time.perf_counter() - start


def run_xorriso(tree: Path, boot: bootloader.BootImages, out: Path) -> float:
    staged = tree.parent / "xtree"
    if not staged.exists():  # the same files plus the boot images, hard-linked (no copy time)
        shutil.copytree(tree, staged, copy_function=os.link)
        (staged / "boot/grub").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(boot.bios_image, staged / builder.BIOS_BOOT)
        shutil.copyfile(boot.efi_image, staged / builder.EFI_BOOT)
    cmd = ["xorriso", "-as", "mkisofs", "-quiet", "-iso-level", "3", "-R", "-J",
           "-V", "BENCH", "-o", str(out),
           "-b", builder.BIOS_BOOT, "-c", builder.BOOT_CATALOG, "-no-emul-boot",
           "-boot-load-size", "4", "-boot-info-table", "--grub2-boot-info",
           "--grub2-mbr", str(BOOT_HYBRID),
           "-eltorito-alt-boot", "-e", builder.EFI_BOOT, "-no-emul-boot",
           str(staged)]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, help="assemble this directory instead")
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="iso-bench-") as tmp:
        work = Path(tmp)
        tree = args.tree or work / "tree"
        if args.tree is None:
            make_tree(tree, args.size_mb)
        boot = bootloader.build_boot_images(work / "boot", "bench0123456789", "Bench", EPOCH)
        size = sum(p.stat().st_size for p in tree_files(tree).values())
        pycdlib_times, xorriso_times = [], []
        for _ in range(args.runs):
            pycdlib_times.append(run_pycdlib(tree, boot, work / "p.iso"))
            (work / "p.iso").unlink()
            xorriso_times.append(run_xorriso(tree, boot, work / "x.iso"))
            (work / "x.iso").unlink()
        p, x = statistics.median(pycdlib_times), statistics.median(xorriso_times)
        print(f"tree: {len(tree_files(tree))} files, {size / 1e6:.0f} MB")
        p_runs = [round(t, 2) for t in pycdlib_times]
        x_runs = [round(t, 2) for t in xorriso_times]
        print(f"pycdlib assemble (+SHA256SUMS, MBR): {p:.2f} s  runs {p_runs}")
        print(f"xorriso -as mkisofs:                 {x:.2f} s  runs {x_runs}")
        print(f"ratio pycdlib/xorriso: {p / x:.2f}x (target <= 1.2x): "
              f"{'MET' if p / x <= 1.2 else 'NOT MET'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
