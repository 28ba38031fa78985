"""Engine payload: the engine/ directory on the boot medium and its manifest.

Layout (all under one directory called engine/):
    manifest.json   {"product", "version", "build", "slot_size", "created",
                     "artifacts": {"root": {"path", "sha256", "size"}, "kernel": {...},
                                   "initrd": {...}, ["shim", "grub", "mm": {...}]},
                     ["boot_chain": {"shim": <version>, "grub": <version>}],
                     ["secure_boot": true|false]}
    root.img        the slot image: an ext4 filesystem written block for block into a slot.
                    It carries /boot/vmlinuz and /boot/initrd.img (the same bytes as the
                    kernel and initrd artifacts) so a slot is self-contained and GRUB boots
                    it straight from its partition.
    vmlinuz, initrd.img
    efi/shimx64.efi, efi/grubx64.efi, efi/mmx64.efi
                    the signed UEFI boot chain (shim, signed GRUB, MOK manager) the installer
                    puts on the ESP, and its Debian package versions in "boot_chain"; a payload
                    without them (Engine before Secure Boot support) gets a GRUB built by the
                    installer, which boots with Secure Boot off only. "secure_boot": true says
                    Engine runs with Secure Boot on (signed chain and kernel); missing = false.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from engine_installer.base.errors import UserError

MANIFEST_NAME = "manifest.json"
ARTIFACT_NAMES = ("root", "kernel", "initrd")
CHAIN_ARTIFACTS = ("shim", "grub", "mm")  # with "boot_chain": the signed UEFI chain
CHAIN_COMPONENTS = ("shim", "grub")  # the versions "boot_chain" records (mm ships with shim)
HASH_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class Artifact:
    name: str
    path: Path  # absolute, inside the payload directory
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    product: str
    version: str
    build: str
    slot_size: int  # bytes reserved for each slot partition
    created: str
    artifacts: dict[str, Artifact]
    directory: Path
    boot_chain: dict[str, str] = field(default_factory=dict)  # component → package version
    secure_boot: bool = False  # Engine runs with Secure Boot on

    @property
    def root_image(self) -> Artifact:
        return self.artifacts["root"]

    def chain_artifacts(self) -> dict[str, Artifact]:
        """The signed UEFI chain ({} for a payload without one)."""
        if not self.boot_chain:
            return {}
        return {name: self.artifacts[name] for name in CHAIN_ARTIFACTS}

    def label(self) -> str:
        return f"{self.product} {self.version} (build {self.build})"


def find_payload_dir(source: Path) -> Path:
    """Accept a payload dir itself, a directory holding engine/, or a mounted medium."""
    for candidate in (source, source / "engine"):
        if (candidate / MANIFEST_NAME).is_file():
            return candidate
    raise UserError(
        f"no Engine payload at {source}: point source at a directory holding "
        f"engine/{MANIFEST_NAME} or at an Engine ISO"
    )


def load_manifest(payload_dir: Path) -> Manifest:
    path = payload_dir / MANIFEST_NAME
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path} is missing: the payload is incomplete, rebuild it") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path} is not valid JSON ({err}): rebuild the payload") from None
    try:
        artifacts = {
            name: Artifact(
                name=name,
                path=payload_dir / entry["path"],
                sha256=str(entry["sha256"]).lower(),
                size=int(entry["size"]),
            )
            for name, entry in data["artifacts"].items()
        }
        manifest = Manifest(
            product=str(data["product"]),
            version=str(data["version"]),
            build=str(data["build"]),
            slot_size=int(data["slot_size"]),
            created=str(data.get("created", "")),
            artifacts=artifacts,
            directory=payload_dir,
            boot_chain={str(k): str(v) for k, v in data.get("boot_chain", {}).items()},
            secure_boot=data.get("secure_boot", False),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise UserError(f"{path} lacks or garbles field {err}: rebuild the payload") from None
    if not isinstance(manifest.secure_boot, bool):
        raise UserError(f"{path}: secure_boot must be true or false; rebuild the payload")
    needed = ARTIFACT_NAMES + (CHAIN_ARTIFACTS if manifest.boot_chain else ())
    missing = [name for name in needed if name not in artifacts]
    if missing:
        raise UserError(f"{path} names no {missing[0]} artifact: rebuild the payload")
    if manifest.boot_chain and sorted(manifest.boot_chain) != sorted(CHAIN_COMPONENTS):
        raise UserError(
            f"{path}: boot_chain must give the versions of {' and '.join(CHAIN_COMPONENTS)}; "
            "rebuild the payload"
        )
    if manifest.secure_boot and not manifest.boot_chain:
        raise UserError(f"{path}: secure_boot is true but no boot_chain: rebuild the payload")
    if manifest.root_image.size > manifest.slot_size:
        raise UserError(f"{path}: root image is larger than slot_size; rebuild the payload")
    return manifest


def sha256_file(path: Path, chunk: int = HASH_CHUNK) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_artifact(artifact: Artifact) -> None:
    """Size and SHA-256 of one artifact against the manifest; UserError names the file."""
    try:
        size = artifact.path.stat().st_size
    except FileNotFoundError:
        raise UserError(
            f"payload file {artifact.path} is missing: the medium is incomplete, rewrite it"
        ) from None
    if size != artifact.size:
        raise UserError(
            f"payload file {artifact.path} is truncated or wrong ({size} bytes, manifest says "
            f"{artifact.size}): the medium is damaged, rewrite it"
        )
    if sha256_file(artifact.path) != artifact.sha256:
        raise UserError(
            f"payload file {artifact.path} does not match its manifest hash: the medium is "
            "damaged, rewrite it"
        )


def verify_payload(manifest: Manifest) -> None:
    for artifact in manifest.artifacts.values():
        verify_artifact(artifact)


def write_manifest(payload_dir: Path, fields: dict, artifact_paths: dict[str, str]) -> Path:
    """Hash the named artifacts and write manifest.json (used by the payload builder)."""
    artifacts = {}
    for name, relpath in artifact_paths.items():
        full = payload_dir / relpath
        artifacts[name] = {
            "path": relpath,
            "sha256": sha256_file(full),
            "size": full.stat().st_size,
        }
    data = dict(fields, artifacts=artifacts)
    path = payload_dir / MANIFEST_NAME
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path
