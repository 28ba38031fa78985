"""Engine installer media: is this one, is it intact, and where are its payload's bytes?

Shared by engine-iso check, engine-usb, the live system's "check the medium" step and the
installer itself, which reads its payload from a medium (an ISO file read in place, a mounted
medium or a payload directory) through open_medium().

The medium layout (project-wide): ISO9660 + Rock Ridge + Joliet; the Engine payload under
/engine/ (manifest.json and its artifacts); /SHA256SUMS at the root in `sha256sum` format covering
every regular file except itself, its signature and the El Torito boot catalog; on a signed
medium /SHA256SUMS.p7s, a CMS signature of SHA256SUMS (ondisk/signature.py); a hybrid MBR so it
boots from USB.

The same checks run over an ISO file (read with pycdlib, never mounted, so no root is needed) and
over a mounted medium directory (e.g. /run/live/medium in the live system).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

import pycdlib
from pycdlib.pycdlibexception import PyCdlibException

from engine_installer.base.errors import UserError
from engine_installer.base.progress import ProgressCallback, ProgressEvent
from engine_installer.ondisk.payload import (
    MANIFEST_NAME,
    MAX_TRUST_CERT_BYTES,
    MAX_TRUST_CERTS,
    TRUST_SUBDIR,
    Manifest,
    check_trust_cert,
    find_payload_dir,
    load_manifest,
    parse_manifest,
)
from engine_installer.ondisk.signature import MAX_SIGNATURE_BYTES, SIGNATURE_NAME

SUMS_NAME = "SHA256SUMS"
PAYLOAD_DIR = "engine"
MANIFEST_PATH = f"{PAYLOAD_DIR}/{MANIFEST_NAME}"
TRUST_PREFIX = f"{PAYLOAD_DIR}/{TRUST_SUBDIR}/"
# On a mounted medium the boot catalog is just a file; these are the names xorriso, genisoimage
# and grub-mkrescue give it. On an ISO file pycdlib tells us which record it is.
BOOT_CATALOG_NAMES = frozenset({"boot.catalog", "boot.cat"})
CHUNK = 4 * 1024 * 1024
ISO_SECTOR = 2048
PHASE = "check-medium"


def has_hybrid_mbr(path: Path) -> bool:
    """True when the image starts with an MBR (0x55AA) holding at least one partition entry,
    i.e. it boots when written to a USB stick, not only from a DVD."""
    try:
        with open(path, "rb") as handle:
            sector = handle.read(512)
    except OSError:
        return False
    if len(sector) < 512 or sector[510:512] != b"\x55\xaa":
        return False
    for index in range(4):
        entry = sector[446 + 16 * index : 462 + 16 * index]
        part_type = entry[4]
        sectors = int.from_bytes(entry[12:16], "little")
        if part_type != 0 and sectors != 0:
            return True
    return False


def is_engine_iso(path: Path) -> bool:
    """True for a readable ISO9660 image that carries /engine/manifest.json."""
    try:
        with _open_iso(path) as iso:
            return _find_file(iso, MANIFEST_PATH) is not None
    except UserError:
        return False


def check_iso(path: Path, progress: ProgressCallback | None = None) -> None:
    """Structure, manifest, and every file's SHA-256 against SHA256SUMS and the manifest.

    Raises UserError naming the first bad file (in SHA256SUMS order)."""
    path = Path(path)
    _check_not_truncated(path)
    with _open_iso(path) as iso:
        files = _iso_files(iso)
        sums_data = _read_iso_file(iso, files, SUMS_NAME, path)
        manifest_data = _read_iso_file(iso, files, MANIFEST_PATH, path)

        def read(rel: str, sink: _HashSink) -> None:
            try:
                iso.get_file_from_iso_fp(sink, blocksize=CHUNK, **{files[rel][0]: files[rel][1]})
            except (PyCdlibException, OSError) as err:
                raise UserError(
                    f"{rel} on {path.name} cannot be read ({err}): {_DAMAGED}"
                ) from None

        sizes = {rel: entry[2] for rel, entry in files.items()}
        _check_all(path.name, sums_data, manifest_data, sizes, read, progress)


def check_medium_dir(root: Path, progress: ProgressCallback | None = None) -> None:
    """The same checks over a mounted medium directory (e.g. /run/live/medium)."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(
            f"{root} is not a directory: name the mounted medium, e.g. /run/live/medium"
        )
    sizes: dict[str, int] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            full = Path(dirpath) / name
            if full.is_symlink() or not full.is_file():
                continue
            rel = full.relative_to(root).as_posix()
            if name.lower() in BOOT_CATALOG_NAMES:
                continue
            sizes[rel] = full.stat().st_size

    def read_small(rel: str) -> bytes:
        try:
            return (root / rel).read_bytes()
        except FileNotFoundError:
            raise UserError(f"{rel} is missing on {root}: {_NOT_ENGINE}") from None

    def read(rel: str, sink: _HashSink) -> None:
        try:
            with open(root / rel, "rb") as handle:
                while block := handle.read(CHUNK):
                    sink.write(block)
        except OSError as err:
            raise UserError(f"{rel} on {root} cannot be read ({err}): {_DAMAGED}") from None

    sums_data = read_small(SUMS_NAME)
    manifest_data = read_small(MANIFEST_PATH)
    _check_all(str(root), sums_data, manifest_data, sizes, read, progress)


# --- shared logic --------------------------------------------------------------------------

_DAMAGED = "the ISO is damaged, download or build it again"
_NOT_ENGINE = "this is not an Engine installer medium, or it is damaged; download or build it again"


class _HashSink:
    """A write-only file object that hashes what pycdlib copies into it and reports progress."""

    def __init__(self, on_bytes) -> None:
        self.digest = hashlib.sha256()
        self.size = 0
        self._on_bytes = on_bytes

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        self._on_bytes(len(data))
        return len(data)


def parse_sums(data: bytes, where: str) -> dict[str, str]:
    """`sha256sum` output → {relative path: hex}, in file order."""
    sums: dict[str, str] = {}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{SUMS_NAME} on {where} is not text: {_DAMAGED}") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, name = line.partition(" ")
        name = name[1:] if name[:1] in (" ", "*") else name
        if not sep or len(digest) != 64 or not name:
            raise UserError(f"{SUMS_NAME} on {where} line {number} is garbled: {_DAMAGED}")
        try:
            int(digest, 16)
        except ValueError:
            raise UserError(
                f"{SUMS_NAME} on {where} line {number} is garbled: {_DAMAGED}"
            ) from None
        rel = PurePosixPath(name.removeprefix("./")).as_posix().lstrip("/")
        sums[rel] = digest.lower()
    if not sums:
        raise UserError(f"{SUMS_NAME} on {where} is empty: {_DAMAGED}")
    return sums


def _check_all(where, sums_data, manifest_data, sizes, read, progress) -> None:
    sums = parse_sums(sums_data, where)
    artifacts = _manifest_artifacts(manifest_data, where)
    for rel in sums:
        if rel not in sizes:
            raise UserError(f"{rel} is listed in {SUMS_NAME} but missing on {where}: {_DAMAGED}")
    for rel in sizes:
        if rel not in (SUMS_NAME, SIGNATURE_NAME) and rel not in sums:
            raise UserError(f"{rel} on {where} is not listed in {SUMS_NAME}: {_DAMAGED}")
    for rel, (_digest, size) in artifacts.items():
        if rel not in sizes:
            raise UserError(f"{rel} named by the manifest is missing on {where}: {_DAMAGED}")
        if sizes[rel] != size:
            raise UserError(
                f"{rel} on {where} is {sizes[rel]} bytes, the manifest says {size}: {_DAMAGED}"
            )
    report = progress or (lambda _event: None)
    total = sum(sizes[rel] for rel in sums)
    done = 0
    for rel, expected in sums.items():

        def on_bytes(count: int, rel: str = rel) -> None:
            nonlocal done
            done += count
            report(ProgressEvent(PHASE, done, total, f"checking {rel}"))

        sink = _HashSink(on_bytes)
        read(rel, sink)
        actual = sink.digest.hexdigest()
        if sink.size != sizes[rel] or actual != expected:
            raise UserError(f"{rel} on {where} does not match its checksum: {_DAMAGED}")
        if rel in artifacts and artifacts[rel][0] != actual:
            raise UserError(f"{rel} on {where} does not match the manifest's hash: {_DAMAGED}")
    report(ProgressEvent(PHASE, total, total, "medium checked"))


def _manifest_artifacts(data: bytes, where: str) -> dict[str, tuple[str, int]]:
    """Validate the manifest; return {medium path: (sha256, size)} of its artifacts."""
    try:
        manifest = parse_manifest(
            data, f"{where}: {MANIFEST_PATH}", Path(where), lambda rel: (Path(rel), 0)
        )
    except UserError as err:
        raise UserError(str(err)) from None
    return {a.medium_path: (a.sha256, a.size) for a in manifest.artifacts.values()}


# --- pycdlib helpers -----------------------------------------------------------------------


@contextmanager
def _open_iso(path: Path) -> Iterator[pycdlib.PyCdlib]:
    iso = pycdlib.PyCdlib()
    try:
        iso.open(str(path))
    except FileNotFoundError:
        raise UserError(f"{path} not found: check the path to the ISO") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a directory: name the ISO file") from None
    except (PyCdlibException, OSError, ValueError) as err:
        raise UserError(f"{path} is not a readable ISO9660 image ({err}): {_NOT_ENGINE}") from None
    try:
        yield iso
    finally:
        iso.close()


def _check_not_truncated(path: Path) -> None:
    """The primary volume descriptor (sector 16) states the filesystem's size; a shorter file was
    cut off in a download or copy."""
    try:
        with open(path, "rb") as handle:
            handle.seek(16 * ISO_SECTOR)
            pvd = handle.read(ISO_SECTOR)
            size = os.fstat(handle.fileno()).st_size
    except FileNotFoundError:
        raise UserError(f"{path} not found: check the path to the ISO") from None
    except OSError as err:
        raise UserError(f"{path} cannot be read ({err}): check the path to the ISO") from None
    if len(pvd) < ISO_SECTOR or pvd[1:6] != b"CD001":
        raise UserError(f"{path} is not an ISO9660 image: {_NOT_ENGINE}")
    blocks = int.from_bytes(pvd[80:84], "little")
    block_size = int.from_bytes(pvd[128:130], "little") or ISO_SECTOR
    if size < blocks * block_size:
        raise UserError(
            f"{path} is truncated ({size} of {blocks * block_size} bytes): "
            "download or copy it again"
        )


def _iso_files(iso: pycdlib.PyCdlib) -> dict[str, tuple[str, str, int]]:
    """Every regular file on the ISO except the boot catalog: {relative path: (path kind,
    pycdlib path, size)}. Rock Ridge names first, then Joliet, then plain ISO9660 names."""
    if iso.has_rock_ridge():
        kind = "rr_path"
    elif iso.has_joliet():
        kind = "joliet_path"
    else:
        kind = "iso_path"
    catalog = iso.eltorito_boot_catalog
    catalog_extent = catalog.extent_location() if catalog is not None else None
    files: dict[str, tuple[str, str, int]] = {}
    for dirpath, _dirs, names in iso.walk(**{kind: "/"}):
        for name in names:
            full = f"{dirpath.rstrip('/')}/{name}"
            record = iso.get_record(**{kind: full})
            rock_ridge = record.rock_ridge if kind == "rr_path" else None
            if rock_ridge is not None and rock_ridge.is_symlink():
                continue
            if catalog_extent is not None and record.extent_location() == catalog_extent:
                continue
            rel = full.lstrip("/")
            if kind == "iso_path":
                rel = rel.split(";", 1)[0].lower()
            files[rel] = (kind, full, record.get_data_length())
    return files


def _find_file(iso: pycdlib.PyCdlib, rel: str) -> tuple[str, str] | None:
    candidates = []
    if iso.has_rock_ridge():
        candidates.append(("rr_path", f"/{rel}"))
    if iso.has_joliet():
        candidates.append(("joliet_path", f"/{rel}"))
    candidates.append(("iso_path", f"/{rel.upper()};1"))
    for kind, name in candidates:
        try:
            record = iso.get_record(**{kind: name})
        except PyCdlibException:
            continue
        if not record.is_dir():
            return kind, name
    return None


def _read_iso_file(iso, files, rel: str, path: Path) -> bytes:
    if rel not in files:
        raise UserError(f"{path.name} has no /{rel}: {_NOT_ENGINE}")
    kind, name, size = files[rel]
    if size > 16 * 1024 * 1024:
        raise UserError(f"/{rel} on {path.name} is implausibly large: {_DAMAGED}")
    buffer = io.BytesIO()
    try:
        iso.get_file_from_iso_fp(buffer, **{kind: name})
    except (PyCdlibException, OSError) as err:
        raise UserError(f"/{rel} on {path.name} cannot be read ({err}): {_DAMAGED}") from None
    return buffer.getvalue()


def manifest_from_iso(path: Path) -> dict:
    """The manifest of an Engine ISO as plain JSON data (for listings and confirmations)."""
    with _open_iso(Path(path)) as iso:
        data = _read_iso_file(iso, _iso_files(iso), MANIFEST_PATH, Path(path))
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"/{MANIFEST_PATH} on {path} is not valid JSON: {_DAMAGED}") from None


# --- the installer's source ----------------------------------------------------------------


@dataclass(frozen=True)
class Medium:
    """Where the Engine to install comes from, with its manifest checked against SHA256SUMS.

    kind is "iso" (an ISO file read in place: artifacts point at byte offsets in it),
    "medium" (a mounted medium directory with SHA256SUMS, e.g. /run/live/medium) or
    "payload" (a bare payload directory, as built by engine-iso sample-payload: no SHA256SUMS).
    The root image's own hash is checked while it is written, so opening reads no big file.
    """

    kind: str
    location: Path
    manifest: Manifest
    sums: bytes = b""  # SHA256SUMS as read (what the signature covers); b"" for a payload dir
    signature: bytes | None = None  # SHA256SUMS.p7s; None when the medium is not signed

    def describe(self) -> str:
        return {"iso": "ISO", "medium": "medium", "payload": "payload directory"}[
            self.kind
        ] + f" {self.location}"


def open_medium(source: Path) -> Medium:
    """The Engine on an ISO file, a mounted medium or a payload directory; UserError if none."""
    source = Path(source)
    if "\0" in str(source):
        raise UserError("the source path contains a NUL byte: name the Engine ISO or payload")
    if source.is_file():
        return _open_iso_medium(source)
    if not source.exists():
        raise UserError(f"source {source} does not exist: point it at a payload or an Engine ISO")
    if not source.is_dir():
        raise UserError(f"source {source} is neither a file nor a directory: name the ISO")
    payload = find_payload_dir(source)
    root = payload.parent if payload.name == PAYLOAD_DIR else None
    if root is not None and (root / SUMS_NAME).is_file():
        return _open_medium_dir(root, payload)
    manifest = load_manifest(payload)
    for artifact in manifest.artifacts.values():
        try:
            size = artifact.path.stat().st_size
        except OSError:
            raise UserError(
                f"payload file {artifact.path} is missing: the payload is incomplete, rebuild it"
            ) from None
        if size != artifact.size:
            raise UserError(
                f"payload file {artifact.path} is truncated or wrong ({size} bytes, the manifest "
                f"says {artifact.size}): rebuild or copy the payload again"
            )
    return Medium("payload", payload, manifest)


def _checked_against_sums(
    manifest: Manifest, sums: dict[str, str], manifest_data: bytes, where: str
) -> None:
    """The manifest is the one SHA256SUMS names, and it names the same artifact hashes."""
    expected = sums.get(MANIFEST_PATH)
    if expected is None:
        raise UserError(f"{SUMS_NAME} on {where} does not list {MANIFEST_PATH}: {_DAMAGED}")
    if hashlib.sha256(manifest_data).hexdigest() != expected:
        raise UserError(
            f"{MANIFEST_PATH} on {where} does not match {SUMS_NAME} (it was changed after the "
            f"build): {_DAMAGED}"
        )
    for artifact in manifest.artifacts.values():
        listed = sums.get(artifact.medium_path)
        if listed is None:
            raise UserError(
                f"{artifact.medium_path} is not listed in {SUMS_NAME} on {where}: {_DAMAGED}"
            )
        if listed != artifact.sha256:
            raise UserError(
                f"{artifact.medium_path} on {where}: the manifest's hash differs from "
                f"{SUMS_NAME}: {_DAMAGED}"
            )


def _open_medium_dir(root: Path, payload: Path) -> Medium:
    try:
        sums_data = (root / SUMS_NAME).read_bytes()
        manifest_data = (payload / MANIFEST_NAME).read_bytes()
    except OSError as err:
        raise UserError(f"{root} cannot be read ({err.strerror}): {_DAMAGED}") from None
    where = str(root)
    manifest = parse_manifest(
        manifest_data,
        f"{root}/{MANIFEST_PATH}",
        payload,
        lambda rel: (payload / rel, 0),
        prefix=PAYLOAD_DIR,
    )
    sums = parse_sums(sums_data, where)
    _checked_against_sums(manifest, sums, manifest_data, where)
    trust = {}
    trust_dir = payload / TRUST_SUBDIR
    if trust_dir.is_dir():
        for entry in sorted(trust_dir.iterdir())[: MAX_TRUST_CERTS + 1]:
            trust[f"{TRUST_PREFIX}{entry.name}"] = _small_file(entry, where)
    signed = (root / SIGNATURE_NAME).is_file()
    signature = _small_file(root / SIGNATURE_NAME, where) if signed else None
    for artifact in manifest.artifacts.values():
        try:
            size = artifact.path.stat().st_size
        except OSError:
            raise UserError(f"{artifact.medium_path} is missing on {where}: {_DAMAGED}") from None
        if size != artifact.size:
            raise UserError(
                f"{artifact.medium_path} on {where} is {size} bytes, the manifest says "
                f"{artifact.size}: {_DAMAGED}"
            )
    manifest = _with_trust(manifest, trust, sums, where)
    return Medium("medium", root, manifest, sums_data, signature)


def _small_file(path: Path, where: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_SIGNATURE_BYTES + 1)
    except OSError as err:
        raise UserError(
            f"{path.name} on {where} cannot be read ({err.strerror}): {_DAMAGED}"
        ) from None
    if len(data) > MAX_SIGNATURE_BYTES:
        raise UserError(f"{path.name} on {where} is implausibly large: {_DAMAGED}")
    return data


def _with_trust(
    manifest: Manifest, found: dict[str, bytes], sums: dict[str, str], where: str
) -> Manifest:
    """The manifest with the medium's trust certificates, each checked against SHA256SUMS."""
    if len(found) > MAX_TRUST_CERTS:
        raise UserError(f"{where} carries more than {MAX_TRUST_CERTS} trust certificates")
    certs = {}
    for rel, data in sorted(found.items()):
        if sums.get(rel) != hashlib.sha256(data).hexdigest():
            raise UserError(f"{rel} on {where} does not match its checksum: {_DAMAGED}")
        name = rel.removeprefix(TRUST_PREFIX)
        certs[name] = check_trust_cert(name, data, where)
    return replace(manifest, trust_certs=certs) if certs else manifest


def _open_iso_medium(path: Path) -> Medium:
    """Read SHA256SUMS and the manifest with pycdlib; artifacts become byte ranges of the ISO
    (ISO9660 stores a file in one extent, so the bytes are read in place, no mount needed)."""
    _check_not_truncated(path)
    with _open_iso(path) as iso:
        files = _iso_files(iso)
        sums_data = _read_iso_file(iso, files, SUMS_NAME, path)
        manifest_data = _read_iso_file(iso, files, MANIFEST_PATH, path)
        signature = None
        if SIGNATURE_NAME in files:
            signature = _read_iso_file(iso, files, SIGNATURE_NAME, path)
        trust_files = [rel for rel in sorted(files) if rel.startswith(TRUST_PREFIX)]
        if len(trust_files) > MAX_TRUST_CERTS:
            raise UserError(f"{path.name} carries more than {MAX_TRUST_CERTS} trust certificates")
        for rel in trust_files:
            if files[rel][2] > MAX_TRUST_CERT_BYTES:
                raise UserError(f"/{rel} on {path.name} is not a PEM certificate: {_DAMAGED}")
        trust = {rel: _read_iso_file(iso, files, rel, path) for rel in trust_files}
        extents: dict[str, tuple[int, int]] = {}
        for rel, (kind, name, size) in files.items():
            if rel.startswith(PAYLOAD_DIR + "/"):
                record = iso.get_record(**{kind: name})
                extents[rel] = (record.extent_location() * ISO_SECTOR, size)
    where = path.name

    def locate(relpath: str) -> tuple[Path, int]:
        rel = f"{PAYLOAD_DIR}/{relpath}"
        if rel not in extents:
            raise UserError(f"{rel} named by the manifest is missing on {where}: {_DAMAGED}")
        return path, extents[rel][0]

    manifest = parse_manifest(manifest_data, f"{where}:/{MANIFEST_PATH}", path, locate)
    sums = parse_sums(sums_data, where)
    _checked_against_sums(manifest, sums, manifest_data, where)
    manifest = _with_trust(manifest, trust, sums, where)
    for artifact in manifest.artifacts.values():
        size = extents[artifact.medium_path][1]
        if size != artifact.size:
            raise UserError(
                f"{artifact.medium_path} on {where} is {size} bytes, the manifest says "
                f"{artifact.size}: {_DAMAGED}"
            )
    return Medium("iso", path, manifest, sums_data, signature)
