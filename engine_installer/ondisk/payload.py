"""Engine payload: the engine/ directory on the boot medium and its manifest.

Layout (all under one directory called engine/):
    manifest.json   {"product", "version", "build", "slot_size", "created", "pv_driver",
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
    trust/*.pem     optional: the certificates whose signed update kits an Engine installed from
                    this medium accepts (copied into its trust store, see docs/update-kit.md)

Every field is checked by type before anything uses it: a bad manifest is one error line naming
the field, never a traceback and never a half-written disk.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from engine_installer.base.errors import UserError
from engine_installer.base.i18n import _
from engine_installer.base.versions import parse_version

MANIFEST_NAME = "manifest.json"
ARTIFACT_NAMES = ("root", "kernel", "initrd")
CHAIN_ARTIFACTS = ("shim", "grub", "mm")  # with "boot_chain": the signed UEFI chain
CHAIN_COMPONENTS = ("shim", "grub")  # the versions "boot_chain" records (mm ships with shim)
HASH_CHUNK = 4 * 1024 * 1024
MiB = 1024 * 1024
MIN_SLOT_SIZE = MiB
MAX_MANIFEST_BYTES = 1024 * 1024
_BUILD = re.compile(r"[A-Za-z0-9._+-]{1,32}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
TRUST_SUBDIR = "trust"  # in the payload directory: engine/trust/*.pem on a medium
_TRUST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\.pem")
MAX_TRUST_CERTS = 16
MAX_TRUST_CERT_BYTES = 64 * 1024
PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"


@dataclass(frozen=True)
class Artifact:
    name: str
    path: Path  # the file holding the bytes: inside the payload directory, or an ISO file
    sha256: str
    size: int
    offset: int = 0  # where the bytes start in path (an artifact read in place from an ISO)
    medium_path: str = ""  # its name on the medium, e.g. engine/root.img


@dataclass(frozen=True)
class Manifest:
    product: str
    version: str
    build: str
    slot_size: int  # bytes reserved for each slot partition
    created: str
    artifacts: dict[str, Artifact]
    directory: Path  # the payload directory, or the ISO file it was read from
    pv_driver: str = ""  # PV-driver version this Engine brings for its VMs
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # fields we do not use
    boot_chain: dict[str, str] = field(default_factory=dict)  # component → package version
    # Engine runs with Secure Boot on; None when not known (a recorded medium in a dry run).
    secure_boot: bool | None = None
    # The medium's update-kit certificates (trust/*.pem): name → PEM bytes, checked against
    # the medium's SHA256SUMS when it has one. Installs copy them into the trust store.
    trust_certs: dict[str, bytes] = field(default_factory=dict, compare=False)

    @property
    def root_image(self) -> Artifact:
        return self.artifacts["root"]

    def chain_artifacts(self) -> dict[str, Artifact]:
        """The signed UEFI chain ({} for a payload without one)."""
        if not self.boot_chain:
            return {}
        return {name: self.artifacts[name] for name in CHAIN_ARTIFACTS}

    def label(self) -> str:
        """'Engine 5.0 (build 5021)' in the current language (screens, steps and the log)."""
        return _("{product} {version} (build {build})").format(
            product=self.product, version=self.version, build=self.build
        )

    def plain_label(self) -> str:
        """The label in English, for what is not read in one language (boot menus)."""
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


def check_trust_cert(name: str, data: bytes, where: str) -> bytes:
    """One update-kit certificate of a medium: a PEM certificate under a plain file name."""
    if not _TRUST_NAME.fullmatch(name):
        raise UserError(
            f"{where}: trust certificate name {name!r} is invalid (letters, digits, . _ - and "
            "the suffix .pem): rebuild the medium"
        )
    if len(data) > MAX_TRUST_CERT_BYTES or PEM_CERTIFICATE not in data:
        raise UserError(f"{where}: {name} is not a PEM certificate: rebuild the medium")
    return data


def read_trust_dir(directory: Path, where: str) -> dict[str, bytes]:
    """The certificates in a payload's trust/ directory ({} when it has none)."""
    if not directory.is_dir():
        return {}
    names = sorted(p.name for p in directory.iterdir() if p.is_file())
    if len(names) > MAX_TRUST_CERTS:
        raise UserError(f"{where} holds {len(names)} files; at most {MAX_TRUST_CERTS} fit")
    certs = {}
    for name in names:
        try:
            data = (directory / name).read_bytes()
        except OSError as err:
            raise UserError(f"{where}/{name} cannot be read ({err.strerror})") from None
        certs[name] = check_trust_cert(name, data, where)
    return certs


def load_manifest(payload_dir: Path) -> Manifest:
    """The manifest of a payload directory, every field checked."""
    path = payload_dir / MANIFEST_NAME
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        raise UserError(f"{path} is missing: the payload is incomplete, rebuild it") from None
    except OSError as err:
        raise UserError(f"{path} cannot be read ({err.strerror}): check the medium") from None

    def locate(relpath: str) -> tuple[Path, int]:
        return payload_dir / relpath, 0

    manifest = parse_manifest(data, str(path), payload_dir, locate)
    certs = read_trust_dir(payload_dir / TRUST_SUBDIR, str(payload_dir / TRUST_SUBDIR))
    return replace(manifest, trust_certs=certs) if certs else manifest


def parse_manifest(
    data: bytes,
    where: str,
    directory: Path,
    locate: Callable[[str], tuple[Path, int]],
    prefix: str = "engine",
) -> Manifest:
    """Check and decode manifest bytes; locate(relative path) says where an artifact's bytes
    are (file, offset). UserError names the field and the fix."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise UserError(f"{where} is implausibly large: the medium is damaged, rewrite it")
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{where} is not valid JSON ({err}): rebuild the payload") from None
    if not isinstance(raw, dict):
        raise UserError(f"{where} is not a JSON object: rebuild the payload")

    def bad(key: str, value: Any, allowed: str) -> UserError:
        return UserError(
            f"{where}: {key} = {json.dumps(value)[:60]} is invalid ({allowed}): "
            "rebuild the payload"
        )

    def text(key: str, pattern: re.Pattern[str] | None = None, required: bool = True) -> str:
        value = raw.get(key, None if required else "")
        if not isinstance(value, str) or (required and not value.strip()):
            raise bad(key, value, "a non-empty string")
        if pattern is not None and value and not pattern.fullmatch(value):
            raise bad(key, value, f"it must match {pattern.pattern}")
        return value

    def version_field(key: str, required: bool = True) -> str:
        value = text(key, required=required)
        if value:
            try:
                parse_version(value)
            except UserError:
                raise bad(key, value, "a version made of numbers, e.g. 5.0") from None
        return value

    product = text("product")
    version = version_field("version")
    build = text("build", _BUILD)
    created = text("created", required=False)
    pv_driver = version_field("pv_driver", required=False) or version
    slot_size = raw.get("slot_size")
    if not _is_int(slot_size) or slot_size < MIN_SLOT_SIZE or slot_size % MiB:
        raise bad("slot_size", slot_size, f"a whole number of MiB, at least {MIN_SLOT_SIZE}")
    boot_chain = raw.get("boot_chain", {})
    if not isinstance(boot_chain, dict) or (
        boot_chain
        and (
            sorted(boot_chain) != sorted(CHAIN_COMPONENTS)
            or not all(isinstance(v, str) and v for v in boot_chain.values())
        )
    ):
        raise bad("boot_chain", boot_chain, f"the versions of {' and '.join(CHAIN_COMPONENTS)}")
    secure_boot = raw.get("secure_boot", False)
    if not isinstance(secure_boot, bool):
        raise bad("secure_boot", secure_boot, "true or false")
    if secure_boot and not boot_chain:
        raise bad("secure_boot", secure_boot, "true only with a boot_chain")
    entries = raw.get("artifacts")
    if not isinstance(entries, dict):
        raise bad("artifacts", entries, "an object naming root, kernel and initrd")
    artifacts = {}
    for name in ARTIFACT_NAMES + (CHAIN_ARTIFACTS if boot_chain else ()):
        entry = entries.get(name)
        key = f"artifacts.{name}"
        if not isinstance(entry, dict):
            raise bad(key, entry, "an object with path, sha256 and size")
        relpath = entry.get("path")
        if (
            not isinstance(relpath, str)
            or not relpath
            or PurePosixPath(relpath).is_absolute()
            or ".." in PurePosixPath(relpath).parts
            or "\0" in relpath
        ):
            raise bad(f"{key}.path", relpath, "a file name inside the payload directory")
        digest = entry.get("sha256")
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest.lower()):
            raise bad(f"{key}.sha256", digest, "64 hexadecimal digits")
        size = entry.get("size")
        if not _is_int(size) or size < 0:
            raise bad(f"{key}.size", size, "a byte count")
        file, offset = locate(relpath)
        artifacts[name] = Artifact(
            name=name,
            path=file,
            sha256=digest.lower(),
            size=size,
            offset=offset,
            medium_path=f"{prefix}/{relpath}" if prefix else relpath,
        )
    if artifacts["root"].size > slot_size:
        raise bad("slot_size", slot_size, "at least the size of the root image")
    known = {"product", "version", "build", "created", "pv_driver", "slot_size", "artifacts",
             "boot_chain", "secure_boot"}  # fmt: skip
    return Manifest(
        product=product,
        version=version,
        build=build,
        slot_size=slot_size,
        created=created,
        artifacts=artifacts,
        directory=directory,
        pv_driver=pv_driver,
        extra={k: v for k, v in raw.items() if k not in known},
        boot_chain=dict(boot_chain),
        secure_boot=secure_boot,
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def sha256_file(path: Path, chunk: int = HASH_CHUNK, offset: int = 0, size: int = -1) -> str:
    """SHA-256 of size bytes of path from offset (the whole rest when size < 0)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        handle.seek(offset)
        left = size
        while left != 0:
            block = handle.read(chunk if left < 0 else min(chunk, left))
            if not block:
                break
            digest.update(block)
            left -= len(block) if left > 0 else 0
    return digest.hexdigest()


def read_artifact(artifact: Artifact) -> bytes:
    """An artifact's bytes (from its file, or in place from an ISO), checked against the
    manifest: for the small ones (the boot chain), read whole."""
    with open(artifact.path, "rb") as handle:
        handle.seek(artifact.offset)
        data = handle.read(artifact.size)
    if len(data) != artifact.size or hashlib.sha256(data).hexdigest() != artifact.sha256:
        raise UserError(
            f"payload file {artifact.medium_path or artifact.path} does not match its manifest "
            "hash: the medium is damaged, rewrite it"
        )
    return data


def verify_artifact(artifact: Artifact) -> None:
    """Size and SHA-256 of one artifact against the manifest; UserError names the file."""
    try:
        available = artifact.path.stat().st_size - artifact.offset
    except FileNotFoundError:
        raise UserError(
            f"payload file {artifact.path} is missing: the medium is incomplete, rewrite it"
        ) from None
    if available < artifact.size or (artifact.offset == 0 and available != artifact.size):
        raise UserError(
            f"payload file {artifact.path} is truncated or wrong ({available} bytes, manifest "
            f"says {artifact.size}): the medium is damaged, rewrite it"
        )
    if sha256_file(artifact.path, offset=artifact.offset, size=artifact.size) != artifact.sha256:
        raise UserError(
            f"payload file {artifact.medium_path or artifact.path} does not match its manifest "
            "hash: the medium is damaged, rewrite it"
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
