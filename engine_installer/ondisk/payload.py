"""Engine payload: the engine/ directory on the boot medium and its manifest.

Layout (all under one directory called engine/):
    manifest.json   {"product", "version", "build", "slot_size", "created",
                     "artifacts": {"root": {"path", "sha256", "size"}, "kernel": {...},
                                   "initrd": {...}}}
    root.img        the slot image: an ext4 filesystem written block for block into a slot.
                    It carries /boot/vmlinuz and /boot/initrd.img (the same bytes as the
                    kernel and initrd artifacts) so a slot is self-contained and GRUB boots
                    it straight from its partition.
    vmlinuz, initrd.img
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from engine_installer.base.errors import UserError

MANIFEST_NAME = "manifest.json"
ARTIFACT_NAMES = ("root", "kernel", "initrd")
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

    @property
    def root_image(self) -> Artifact:
        return self.artifacts["root"]

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
        )
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{path} lacks or garbles field {err}: rebuild the payload") from None
    missing = [name for name in ARTIFACT_NAMES if name not in artifacts]
    if missing:
        raise UserError(f"{path} names no {missing[0]} artifact: rebuild the payload")
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
