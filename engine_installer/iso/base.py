"""The live system's slow base layer: Debian via mmdebstrap, squashed once and cached.

The base (kernel, initrd with live-boot, systemd, Python, disk tools) depends only on the
recipe files under iso-build/live/ (package list, mirror settings, hooks). Its cache key is a
hash of those files, so changing the installer never rebuilds it; the installer goes into a
second, small squashfs layer (see app_layer.py) that live-boot stacks on top.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from engine_installer.base.errors import UserError
from engine_installer.iso.kernel_modules import prune_modules

# Bump when this module changes how the base is made (it is part of the cache key).
BASE_FORMAT = "2"
CACHE_ENV = "ENGINE_ISO_CACHE"


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def recipe_dir() -> Path:
    return repo_root() / "iso-build" / "live"


def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    return Path.home() / ".cache" / "engine-installer"


@dataclass(frozen=True)
class BaseLayer:
    directory: Path
    squashfs: Path
    kernel: Path
    initrd: Path
    key: str
    info: dict


def read_list(path: Path) -> list[str]:
    """A recipe list: one item a line, # comments and blank lines ignored."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def read_packages(recipe: Path) -> list[str]:
    return read_list(recipe / "packages.txt")


def read_settings(recipe: Path) -> dict:
    with open(recipe / "base.toml", "rb") as handle:
        return tomllib.load(handle)


def base_key(recipe: Path) -> str:
    """Hash of every input of the base: package list, settings, hooks, this format."""
    digest = hashlib.sha256(f"engine-base-{BASE_FORMAT}\n".encode())
    inputs = [recipe / "packages.txt", recipe / "base.toml"]
    inputs += sorted((recipe / "base-hooks").iterdir())
    for path in inputs:
        digest.update(path.relative_to(recipe).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _load(directory: Path, key: str) -> BaseLayer | None:
    info_path = directory / "base.json"
    if not info_path.is_file():
        return None
    info = json.loads(info_path.read_text())
    layer = BaseLayer(
        directory=directory,
        squashfs=directory / "filesystem.squashfs",
        kernel=directory / "vmlinuz",
        initrd=directory / "initrd.img",
        key=key,
        info=info,
    )
    if all(p.is_file() for p in (layer.squashfs, layer.kernel, layer.initrd)):
        return layer
    return None


def _say(message: str) -> None:
    print(f"engine-iso: {message}", file=sys.stderr, flush=True)


def _run(cmd: list[str], **kwargs: object) -> None:
    try:
        subprocess.run(cmd, check=True, **kwargs)  # type: ignore[call-overload]
    except FileNotFoundError:
        raise UserError(f"{cmd[0]} is not installed: run `make setup` (it installs it)") from None
    except subprocess.CalledProcessError as err:
        raise UserError(
            f"{cmd[0]} failed (exit {err.returncode}) while building the live system base: "
            "read its output above, fix the recipe or network, and run again"
        ) from None


def squash_epoch() -> str:
    """The one time every file and directory of a squashed layer gets (mksquashfs -all-time):
    SOURCE_DATE_EPOCH, else 0."""
    return os.environ.get("SOURCE_DATE_EPOCH", "0")


def mksquashfs(source: Path, target: Path, settings: dict, extra: list[str] = ()) -> None:
    """Squash a tree reproducibly: fixed times (squash_epoch) and sorted by mksquashfs."""
    epoch = squash_epoch()
    # On a terminal (make demo) mksquashfs's own bar shows a base build's minutes going by;
    # in a log or a pipe it would only add noise.
    terminal = sys.stderr.isatty()
    cmd = [
        "mksquashfs",
        str(source),
        str(target),
        "-noappend",
        "-quiet",
        *([] if terminal else ["-no-progress"]),
        "-comp",
        settings.get("squashfs_compression", "zstd"),
        "-mkfs-time",
        epoch,
        "-all-time",
        epoch,
        *extra,
    ]
    if settings.get("squashfs_compression", "zstd") == "zstd":
        cmd += ["-Xcompression-level", str(settings.get("squashfs_level", 6))]
    # mksquashfs refuses -mkfs-time/-all-time when SOURCE_DATE_EPOCH is also set.
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    _run(cmd, stdout=sys.stderr if terminal else subprocess.DEVNULL, env=env)


def build_base(cache: Path, recipe: Path | None = None, rebuild: bool = False) -> BaseLayer:
    """Return the cached base for this recipe, building it first when absent (or asked)."""
    recipe = recipe or recipe_dir()
    key = base_key(recipe)
    directory = cache / f"base-{key}"
    if not rebuild:
        cached = _load(directory, key)
        if cached:
            _say(f"live system base {key}: cached in {directory}")
            return cached
    if os.geteuid() != 0:
        raise UserError(
            "building the live system base needs root (mmdebstrap --mode=root): run as root, "
            f"or point {CACHE_ENV} at a cache that already holds base-{key}"
        )
    settings = read_settings(recipe)
    packages = read_packages(recipe)
    cache.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    _say(f"building live system base {key} with mmdebstrap (several minutes, once)")
    with tempfile.TemporaryDirectory(prefix=f"base-{key}-", dir=cache) as tmp:
        work = Path(tmp)
        rootfs = work / "rootfs"
        hooks = recipe / "base-hooks"
        cmd = [
            "mmdebstrap",
            "--mode=root",
            f"--variant={settings.get('variant', 'minbase')}",
            f"--components={','.join(settings.get('components', ['main']))}",
            '--aptopt=APT::Install-Recommends "false"',
            *(f"--dpkgopt={option}" for option in settings.get("dpkg_options", [])),
            "--include=" + ",".join(packages),
            f"--setup-hook=sh {hooks / 'setup.sh'} \"$1\"",
            f"--customize-hook=sh {hooks / 'customize.sh'} \"$1\" "
            f"{settings.get('hostname', 'engine-installer')}",
            settings.get("suite", "bookworm"),
            str(rootfs),
            *settings["mirrors"],
        ]
        # The hooks record what must match the squashed root's times (fontconfig's caches).
        _run(cmd, env=dict(os.environ, ENGINE_SQUASH_EPOCH=squash_epoch()))
        prune_modules(rootfs, read_list(hooks / "pruned-modules"), _say)
        boot = rootfs / "boot"
        kernels = sorted(boot.glob("vmlinuz-*"))
        initrds = sorted(boot.glob("initrd.img-*"))
        if not kernels or not initrds:
            raise UserError(
                "the live system base has no kernel or initrd in /boot: check that "
                "iso-build/live/packages.txt lists linux-image-amd64 and live-boot"
            )
        out = work / "out"
        out.mkdir()
        shutil.copyfile(kernels[-1], out / "vmlinuz")
        shutil.copyfile(initrds[-1], out / "initrd.img")
        versions = subprocess.run(
            ["chroot", str(rootfs), "dpkg-query", "-W", "-f=${Package} ${Version}\\n"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.splitlines()
        # /boot is not needed inside the running live system: the kernel and initrd are
        # on the medium under /live/.
        size = sum(
            f.stat().st_size for f in rootfs.rglob("*") if f.is_file() and not f.is_symlink()
        )
        _say(
            f"squashing the live system base ({size / 1e6:.0f} MB, "
            f"{settings.get('squashfs_compression', 'zstd')}): a minute or more"
        )
        squash_started = time.monotonic()
        mksquashfs(rootfs, out / "filesystem.squashfs", settings, ["-wildcards", "-e", "boot/*"])
        squashed = (out / "filesystem.squashfs").stat().st_size
        _say(f"squashed to {squashed / 1e6:.0f} MB in {time.monotonic() - squash_started:.0f} s")
        info = {
            "key": key,
            "kernel": kernels[-1].name.removeprefix("vmlinuz-"),
            "packages": sorted(versions),
            "build_seconds": round(time.monotonic() - started, 1),
        }
        (out / "base.json").write_text(json.dumps(info, indent=2) + "\n")
        if directory.exists():
            shutil.rmtree(directory)
        out.rename(directory)
    _say(f"live system base {key} built in {info['build_seconds']} s")
    layer = _load(directory, key)
    assert layer is not None
    return layer
