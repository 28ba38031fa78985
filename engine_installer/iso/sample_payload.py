"""engine-iso sample-payload: build a sample Engine payload from Debian's kernel and busybox.

The sample Engine is just enough of an OS to test installs, upgrades and boot counting: an
initrd (busybox) that finds this disk's slot by GPT name and switch_roots into it, and a slot
init that mounts engine-storage, counts VMs, marks a trial slot good and prints
`ENGINE <version> build <build> slot=<A|B> vms=<n> secureboot=<on|off>`. The shell scripts
and the module list are in iso-build/sample-engine/; this module only assembles them (see
docs/boot.md).

The output is reproducible: file times come from SOURCE_DATE_EPOCH (default: the kernel's
mtime), the filesystem UUID and hash seed are derived from version and build, cpio and gzip
store no times, and mke2fs runs with E2FSPROGS_FAKE_TIME.
"""

from __future__ import annotations

import argparse
import gzip
import lzma
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from engine_installer.base.errors import UserError
from engine_installer.base.i18n import _
from engine_installer.iso.signed_chain import host_chain
from engine_installer.ondisk.layout import MiB
from engine_installer.ondisk.payload import write_manifest

PRODUCT = "Engine"
DEFAULT_SLOT_SIZE = 256 * MiB
RECIPE_DIR = Path(__file__).resolve().parents[2] / "iso-build" / "sample-engine"
# Namespace for the derived filesystem UUIDs (fixed, so builds are reproducible).
UUID_NAMESPACE = uuid.UUID("6f1d2a4e-3c55-4d0b-9a7e-5e2f3b9c8d01")
# Directories the read-only slot needs as mount points.
SLOT_DIRS = ("proc", "sys", "dev", "run", "tmp", "storage", "esp", "mnt", "root", "etc", "boot")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", required=True, help=_("Engine version, e.g. 5.0"))
    parser.add_argument("--build", default="1", help=_("build number (default 1)"))
    parser.add_argument("--out", required=True, type=Path, help=_("output payload directory"))
    parser.add_argument(
        "--kernel", type=Path, help=_("kernel image (default: newest /boot/vmlinuz-*-amd64)")
    )
    parser.add_argument(
        "--modules",
        type=Path,
        help=_("its module tree (default: /lib/modules/<kernel version>)"),
    )
    parser.add_argument("--pad-to", type=_size, help=_("make root.img this many bytes (e.g. 1G)"))
    parser.add_argument(
        "--slot-size", type=_size, help=_("slot size in the manifest (>= root.img)")
    )
    parser.add_argument(
        "--no-boot-chain",
        action="store_true",
        help=_(
            "leave out the signed UEFI chain, as Engine releases before Secure Boot support: "
            "installs then boot with Secure Boot off only"
        ),
    )
    parser.add_argument(
        "--broken-init",
        action="store_true",
        help=_(
            "an Engine that cannot start: its init fails before marking itself good (for "
            "tests of GRUB's fallback)"
        ),
    )


def run(args: argparse.Namespace) -> int:
    manifest = build_sample_payload(
        version=args.version,
        out=args.out,
        build=args.build,
        kernel=args.kernel,
        modules=args.modules,
        pad_to=args.pad_to,
        slot_size=args.slot_size,
        boot_chain=not args.no_boot_chain,
        broken_init=args.broken_init,
    )
    print(f"sample {PRODUCT} {args.version} build {args.build}: {manifest}")
    return 0


def _size(text: str) -> int:
    match = re.fullmatch(r"(\d+)([KMG]?)", text.strip().upper().removesuffix("IB"))
    if not match:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size: use bytes or e.g. 512M, 1G")
    return int(match[1]) * {"": 1, "K": 1024, "M": MiB, "G": 1024 * MiB}[match[2]]


def _version_key(path: Path) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"[.-]", path.name))


def find_kernel() -> Path:
    kernels = sorted(Path("/boot").glob("vmlinuz-*-amd64"), key=_version_key)
    if not kernels:
        raise UserError(
            "no /boot/vmlinuz-*-amd64 found: install linux-image-amd64 or pass --kernel"
        )
    return kernels[-1]


def find_busybox() -> Path:
    found = shutil.which("busybox")
    if not found:
        raise UserError("busybox not found: install busybox-static")
    path = Path(found).resolve()
    if _elf_interpreter(path):
        raise UserError(f"{path} is dynamically linked: install busybox-static")
    return path


def _elf_interpreter(path: Path) -> bool:
    """True if the 64-bit ELF file at path asks for a dynamic loader (PT_INTERP)."""
    data = path.read_bytes()
    if data[:5] != b"\x7fELF\x02":
        raise UserError(f"{path} is not a 64-bit ELF program: install busybox-static")
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    return any(struct.unpack_from("<I", data, phoff + i * phentsize)[0] == 3 for i in range(phnum))


def _run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, check=True, capture_output=True, **kwargs)
    except FileNotFoundError:
        raise UserError(f"{cmd[0]} is not installed: run `make setup`") from None
    except subprocess.CalledProcessError as err:
        lines = (err.stderr or b"").decode(errors="replace").strip().splitlines()
        detail = lines[-1] if lines else f"exit status {err.returncode}"
        raise UserError(f"{cmd[0]} failed while building the payload: {detail}") from None


def resolve_modules(names: list[str], modules_dir: Path, kver: str) -> list[Path]:
    """Ordered module files (dependencies and soft dependencies first) for names."""
    basedir = modules_dir.parents[2] if modules_dir.parent.name == "modules" else Path("/")
    prefix = str(modules_dir.resolve()) + "/"
    ordered: list[Path] = []
    for name in names:
        result = subprocess.run(
            ["modprobe", "--show-depends", "-d", str(basedir), "-S", kver, name],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            # Built into this kernel or not shipped: nothing to load.
            continue
        for line in result.stdout.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "insmod":
                real = str(Path(parts[1]).resolve())
                if not real.startswith(prefix):
                    raise UserError(f"module {parts[1]} is outside {modules_dir}: pass --modules")
                rel = Path(real[len(prefix) :])
                if rel not in ordered:
                    ordered.append(rel)
    return ordered


def _decompressed_name(rel: Path) -> Path:
    for suffix in (".xz", ".zst", ".gz"):
        if rel.name.endswith(".ko" + suffix):
            return rel.with_name(rel.name.removesuffix(suffix))
    return rel


def _copy_module(src: Path, dest: Path) -> None:
    """Copy one module, decompressed: busybox insmod cannot read .ko.xz/.ko.zst."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if src.name.endswith(".xz"):
        dest.write_bytes(lzma.decompress(src.read_bytes()))
    elif src.name.endswith(".gz"):
        dest.write_bytes(gzip.decompress(src.read_bytes()))
    elif src.name.endswith(".zst"):
        dest.write_bytes(_run(["zstd", "-dc", str(src)]).stdout)
    else:
        shutil.copyfile(src, dest)


def _clamp_times(tree: Path, epoch: int) -> None:
    for path in [tree, *tree.rglob("*")]:
        os.utime(path, (epoch, epoch), follow_symlinks=False)


def build_initrd(
    recipe: Path, busybox: Path, modules_dir: Path, kver: str, work: Path, epoch: int
) -> Path:
    tree = work / "initrd"
    for sub in ("bin", "etc", "dev", "proc", "sys", "newroot"):
        (tree / sub).mkdir(parents=True)
    shutil.copyfile(busybox, tree / "bin" / "busybox")
    (tree / "bin" / "busybox").chmod(0o755)
    (tree / "bin" / "sh").symlink_to("busybox")
    shutil.copyfile(recipe / "initrd-init", tree / "init")
    (tree / "init").chmod(0o755)

    names = [
        line.strip()
        for line in (recipe / "modules.list").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    staged_root = tree / "lib" / "modules" / kver
    order = []
    for rel in resolve_modules(names, modules_dir, kver):
        dest_rel = _decompressed_name(rel)
        _copy_module(modules_dir / rel, staged_root / dest_rel)
        order.append(str(dest_rel))
    for name in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        if (modules_dir / name).is_file():
            shutil.copyfile(modules_dir / name, staged_root / name)
    (tree / "etc" / "engine-modules").write_text("".join(f"{m}\n" for m in order))
    # modules.dep etc. for the staged tree, so busybox modprobe works in a rescue shell.
    _run(["depmod", "-b", str(tree), kver])

    _clamp_times(tree, epoch)
    files = sorted(str(p.relative_to(tree)) for p in tree.rglob("*"))
    cpio = _run(
        ["cpio", "--quiet", "-o", "-H", "newc", "--reproducible", "-R", "0:0"],
        input="\n".join(files).encode() + b"\n",
        cwd=tree,
    ).stdout
    out = work / "initrd.img"
    # mtime=0 and no file name in the gzip header: byte-identical rebuilds.
    with open(out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(cpio)
    return out


def build_slot_tree(
    recipe: Path,
    busybox: Path,
    kernel: Path,
    initrd: Path,
    version: str,
    build: str,
    work: Path,
    epoch: int,
    broken_init: bool = False,
) -> Path:
    tree = work / "root"
    for sub in SLOT_DIRS:
        (tree / sub).mkdir(parents=True)
    for sub in ("bin", "sbin", "usr/bin", "usr/sbin"):
        (tree / sub).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(busybox, tree / "bin" / "busybox")
    (tree / "bin" / "busybox").chmod(0o755)
    applets = _run([str(busybox), "--list-full"], text=True).stdout.split()
    for applet in applets:
        link = tree / applet
        if applet in ("sbin/init", "linuxrc") or link.exists() or link.is_symlink():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to("/bin/busybox")
    shutil.copyfile(recipe / "engine-init", tree / "sbin" / "init")
    (tree / "sbin" / "init").chmod(0o755)
    shutil.copyfile(kernel, tree / "boot" / "vmlinuz")
    shutil.copyfile(initrd, tree / "boot" / "initrd.img")
    (tree / "etc" / "engine-release").write_text(
        f"PRODUCT={PRODUCT}\nVERSION={version}\nBUILD={build}\n"
    )
    if broken_init:  # engine-init fails on it before marking the slot good
        (tree / "etc" / "engine-broken").write_text("built with --broken-init\n")
    _clamp_times(tree, epoch)
    return tree


def make_ext4(tree: Path, image: Path, size: int, label: str, seed: str, epoch: int) -> None:
    fs_uuid = uuid.uuid5(UUID_NAMESPACE, f"root {seed}")
    hash_seed = uuid.uuid5(UUID_NAMESPACE, f"hash {seed}")
    with open(image, "wb") as handle:
        handle.truncate(size)
    env = dict(os.environ, E2FSPROGS_FAKE_TIME=str(epoch))
    _run(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-t",
            "ext4",
            "-b",
            "4096",
            "-m",
            "0",
            "-O",
            "^has_journal",  # the slot is mounted read-only; nothing to journal
            "-L",
            label,
            "-U",
            str(fs_uuid),
            "-E",
            f"hash_seed={hash_seed},root_owner=0:0",
            "-d",
            str(tree),
            str(image),
        ],
        env=env,
    )
    # mke2fs -d copies each file's ctime (which no one can set on the staging tree) and its
    # atime (which reading the tree moves); pin both to the epoch so rebuilds are identical.
    paths = ["/", *(f"/{p.relative_to(tree)}" for p in sorted(tree.rglob("*")))]
    script = "".join(
        f'set_inode_field "{path}" {field} @{epoch}\n'
        for path in paths
        for field in ("ctime", "atime")
    )
    commands = image.with_suffix(".debugfs")
    commands.write_text(script)
    _run(["debugfs", "-w", "-f", str(commands), str(image)], env=env)
    commands.unlink()


def kernel_is_signed(kernel: Path) -> bool:
    """True when the kernel carries an Authenticode signature (shim can check it)."""
    proc = subprocess.run(["sbverify", "--list", str(kernel)], capture_output=True, text=True)
    return proc.returncode == 0 and "signature 1" in proc.stdout


def copy_chain(out: Path, epoch: int) -> tuple[dict[str, str], dict[str, str]]:
    """The host's signed UEFI chain into out/efi/: (artifact paths, boot_chain versions)."""
    chain = host_chain()
    paths = {}
    for name, source in chain.files().items():
        rel = f"efi/{source.name.removesuffix('.signed')}"
        (out / "efi").mkdir(exist_ok=True)
        shutil.copyfile(source, out / rel)
        os.utime(out / rel, (epoch, epoch))
        paths[name] = rel
    return paths, dict(chain.versions)


def _tree_size(tree: Path) -> int:
    return sum(p.lstat().st_size for p in tree.rglob("*"))


def build_sample_payload(
    version: str,
    out: Path,
    build: str = "1",
    kernel: Path | None = None,
    modules: Path | None = None,
    pad_to: int | None = None,
    slot_size: int | None = None,
    epoch: int | None = None,
    recipe: Path = RECIPE_DIR,
    boot_chain: bool = True,
    broken_init: bool = False,
) -> Path:
    """Build the payload into out (manifest.json, root.img, vmlinuz, initrd.img, and with
    boot_chain the host's signed UEFI chain in efi/).

    Returns the manifest path. epoch defaults to $SOURCE_DATE_EPOCH, else the kernel's mtime.
    """
    # Any version string works as long as it is safe in a file, a label and a shell line.
    if not re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z.+~-]*", version):
        raise UserError(f"'{version}' is not usable as an Engine version: use e.g. 5.0")
    if not re.fullmatch(r"[A-Za-z0-9._+-]+", build):
        raise UserError(f"build '{build}' has odd characters: use a number such as 42")
    kernel = Path(kernel) if kernel else find_kernel()
    if not kernel.is_file():
        raise UserError(f"kernel {kernel} not found: pass an existing --kernel")
    # The module tree's name is the kernel release (`uname -r` at boot), which the initrd uses.
    modules = (
        Path(modules) if modules else Path("/lib/modules") / kernel.name.removeprefix("vmlinuz-")
    )
    kver = modules.resolve().name
    if not (modules / "modules.dep").is_file():
        raise UserError(f"no kernel modules at {modules}: pass --modules for kernel {kernel}")
    busybox = find_busybox()
    if epoch is None:
        env_epoch = os.environ.get("SOURCE_DATE_EPOCH")
        epoch = int(env_epoch) if env_epoch else int(kernel.stat().st_mtime)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="engine-payload-") as tmp:
        work = Path(tmp)
        initrd = build_initrd(recipe, busybox, modules, kver, work, epoch)
        tree = build_slot_tree(
            recipe, busybox, kernel, initrd, version, build, work, epoch, broken_init
        )
        # Content plus a quarter and 8 MiB for metadata, in whole MiB.
        needed = (_tree_size(tree) * 5 // 4 + 8 * MiB + MiB - 1) // MiB * MiB
        size = needed
        if pad_to is not None:
            if pad_to < needed:
                raise UserError(f"--pad-to {pad_to} is too small: the image needs {needed} bytes")
            size = pad_to
        # The slot leaves room: at least 256 MiB, else the image plus 64 MiB (whole MiB).
        slot = slot_size or max(DEFAULT_SLOT_SIZE, (size + 65 * MiB - 1) // MiB * MiB)
        if size > slot:
            raise UserError(f"root.img ({size} bytes) exceeds --slot-size {slot}: raise it")
        make_ext4(
            tree, out / "root.img", size, f"engine-{version}"[:16], f"{version} {build}", epoch
        )
        shutil.copyfile(kernel, out / "vmlinuz")
        shutil.copyfile(initrd, out / "initrd.img")

    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    fields = {
        "product": PRODUCT,
        "version": version,
        "build": build,
        "slot_size": slot,
        "created": created,
    }
    artifacts = {"root": "root.img", "kernel": "vmlinuz", "initrd": "initrd.img"}
    shutil.rmtree(out / "efi", ignore_errors=True)
    if boot_chain:
        chain_paths, versions = copy_chain(out, epoch)
        artifacts |= chain_paths
        fields["boot_chain"] = versions
        # Engine runs with Secure Boot on when shim can check its kernel too.
        fields["secure_boot"] = kernel_is_signed(kernel)
    return write_manifest(out, fields, artifacts)
