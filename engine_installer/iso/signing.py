"""Signing a medium as an update kit: `engine-iso build --sign-key KEY --sign-cert CERT`.

The signature is a detached CMS signature of /SHA256SUMS in DER (`openssl cms -sign -binary
-noattr`), stored as /SHA256SUMS.p7s (ondisk/signature.py says how it is checked). -noattr
leaves out the signing time, so a build from the same inputs gives the same bytes (an RSA
PKCS #1 v1.5 signature is deterministic). The certificates a kit's Engine will trust go on the
medium as /engine/trust/*.pem: the signing certificate, plus any --trust-cert (for a key
rotation: the next kits may be signed by that key).
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from engine_installer.base.errors import UserError
from engine_installer.ondisk.payload import TRUST_SUBDIR
from engine_installer.ondisk.signature import check_certificates

TRUST_ON_MEDIUM = f"engine/{TRUST_SUBDIR}"


def _openssl(args: list[str], data: bytes | None = None) -> subprocess.CompletedProcess:
    try:
        # stdin is the data or nothing: an encrypted key must fail, never prompt.
        return subprocess.run(
            ["openssl", *args],
            input=data if data is not None else b"",
            capture_output=True,
            check=False,
        )
    except FileNotFoundError:
        raise UserError("openssl is not installed: install the openssl package") from None


def _last_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else f"exit status {proc.returncode}"


def _readable(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist: check the path") from None
    except IsADirectoryError:
        raise UserError(f"{what} {path} is a directory: name the PEM file") from None
    except OSError as err:
        raise UserError(f"{what} {path} cannot be read ({err.strerror})") from None


def check_sign_key(key: Path, cert: Path) -> None:
    """The key is an unencrypted private key and the certificate is its own."""
    _readable(key, "--sign-key")
    _readable(cert, "--sign-cert")
    # "-passin pass:" gives an encrypted key an empty passphrase: it fails instead of asking.
    pub = _openssl(["pkey", "-in", str(key), "-pubout", "-passin", "pass:"])
    if pub.returncode != 0:
        raise UserError(
            f"--sign-key {key} is not an unencrypted private key in PEM ({_last_line(pub)}): "
            "give the key file without a passphrase"
        )
    cert_pub = _openssl(["x509", "-in", str(cert), "-noout", "-pubkey"])
    if cert_pub.returncode != 0:
        raise UserError(f"--sign-cert {cert} is not a PEM certificate: give the signer's one")
    if cert_pub.stdout.strip() != pub.stdout.strip():
        raise UserError(
            f"--sign-cert {cert} does not belong to --sign-key {key}: give the key's certificate"
        )


def signer(key: Path, cert: Path) -> Callable[[bytes], bytes]:
    """SHA256SUMS bytes → their detached DER CMS signature by key (certificate included)."""

    def sign(data: bytes) -> bytes:
        with tempfile.NamedTemporaryFile(prefix="engine-sums-") as content:
            content.write(data)
            content.flush()
            args = ["cms", "-sign", "-binary", "-noattr", "-md", "sha256", "-outform", "DER",
                    "-in", content.name, "-signer", str(cert), "-inkey", str(key),
                    "-passin", "pass:"]  # fmt: skip
            proc = _openssl(args)
        if proc.returncode != 0 or not proc.stdout:
            raise UserError(f"signing SHA256SUMS with {key} failed ({_last_line(proc)})")
        return proc.stdout

    return sign


def _medium_name(path: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]", "-", path.stem).strip(".-") or "signer"
    return f"{stem[:60]}.pem"


def trust_files(certs: list[Path], already: set[str]) -> dict[str, bytes]:
    """{medium path: PEM} for the certificates a kit's Engine will trust; names are the files'
    own (suffix .pem). already: trust certificates the payload carries itself."""
    files: dict[str, bytes] = {}
    names = set(already)
    for path in certs:
        data = _readable(path, "certificate")
        name = _medium_name(path)
        if name in names:
            raise UserError(
                f"two trust certificates would both be {TRUST_ON_MEDIUM}/{name}: rename one"
            )
        names.add(name)
        files[f"{TRUST_ON_MEDIUM}/{name}"] = data
    check_certificates({p.rsplit("/", 1)[1]: d for p, d in files.items()}, "--trust-cert")
    return files
