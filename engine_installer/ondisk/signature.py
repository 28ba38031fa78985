"""Signed media: a detached CMS signature of the medium's SHA256SUMS, and the trust store.

A signed Engine medium carries /SHA256SUMS.p7s next to /SHA256SUMS: a DER CMS (PKCS #7)
signature of the SHA256SUMS bytes, as `openssl cms -sign -binary` makes it, with the signer's
certificate inside. SHA256SUMS names every file's hash and the manifest names the payload's,
so one signature covers the whole medium. A running Engine installs an update kit only when
that signature verifies against a certificate in its trust store (TRUST_DIR on the storage
partition, PEM files); a stock tool checks a kit the same way:

    openssl cms -verify -binary -inform DER -in SHA256SUMS.p7s -content SHA256SUMS \\
        -CAfile trusted.pem -partial_chain -purpose any -out /dev/null

Why the openssl command: no Python library this project uses verifies CMS signed data
(cryptography can sign PKCS #7 but not verify it), and openssl is what RAUC uses for the same
job. -partial_chain lets the trust store hold the signing certificate itself, not only a CA;
-purpose any because kit certificates are not S/MIME e-mail certificates.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import tempfile
from pathlib import Path

from engine_installer.base.errors import UserError
from engine_installer.ondisk.payload import (
    MAX_TRUST_CERTS,
    PEM_CERTIFICATE,
    check_trust_cert,
)

SIGNATURE_NAME = "SHA256SUMS.p7s"
MAX_SIGNATURE_BYTES = 256 * 1024


def _openssl(args: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            ["openssl", *args],
            capture_output=True,
            text=True,
            errors="replace",
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except FileNotFoundError:
        raise UserError("openssl is not installed: install the openssl package") from None


def load_trust_store(directory: Path) -> dict[str, bytes]:
    """The trusted certificates (name → PEM) in a trust store directory ({} when missing)."""
    if not directory.is_dir():
        return {}
    certs: dict[str, bytes] = {}
    for path in sorted(directory.iterdir()):
        if path.is_file() and path.suffix == ".pem" and not path.name.startswith("."):
            with contextlib.suppress(OSError):
                data = path.read_bytes()
                if PEM_CERTIFICATE in data:
                    certs[path.name] = data
    return certs


def certificate_subject(pem: bytes) -> str:
    """The certificate's subject, e.g. "CN=Engine kits"; "" when it is not readable."""
    with tempfile.NamedTemporaryFile(prefix="engine-cert-") as handle:
        handle.write(pem)
        handle.flush()
        proc = _openssl(["x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in", handle.name])
    return proc.stdout.strip().removeprefix("subject=") if proc.returncode == 0 else ""


def _verify_error(stderr: str) -> str:
    """openssl's reason for a failed certificate check ("self-signed certificate", ...)."""
    found = re.search(r"Verify error:\s*(.+)", stderr)
    return found.group(1).strip() if found else "no trusted certificate issued it"


def _verify_args(work: Path) -> list[str]:
    return ["cms", "-verify", "-binary", "-inform", "DER", "-in", str(work / SIGNATURE_NAME),
            "-content", str(work / "SHA256SUMS"), "-out", "/dev/null"]  # fmt: skip


def _check_own(work: Path, where: str) -> str:
    """Is the signature what its signer made of these SHA256SUMS? The signer's subject."""
    own = _openssl([*_verify_args(work), "-noverify", "-signer", str(work / "signer.pem")])
    if own.returncode != 0:
        raise UserError(
            f"{where}: its signature does not match its SHA256SUMS (the kit was changed after "
            "it was signed, or the signature is damaged): download the kit again"
        )
    return certificate_subject((work / "signer.pem").read_bytes()) or "an unknown signer"


def _staged(sums: bytes, signature: bytes) -> tempfile.TemporaryDirectory:
    tmp = tempfile.TemporaryDirectory(prefix="engine-kit-sig-")
    (Path(tmp.name) / "SHA256SUMS").write_bytes(sums)
    (Path(tmp.name) / SIGNATURE_NAME).write_bytes(signature)
    return tmp


def signature_signer(sums: bytes, signature: bytes, where: str) -> str:
    """The signer's subject when the signature matches sums (who is trusted is not checked)."""
    with _staged(sums, signature) as tmp:
        return _check_own(Path(tmp), where)


def verify_sums_signature(
    sums: bytes, signature: bytes | None, trusted: dict[str, bytes], where: str
) -> str:
    """The signer's subject when signature is a valid signature of sums by a certificate in
    trusted (or one they issued); UserError, one sentence, otherwise."""
    if not signature:
        raise UserError(
            f"{where} is not signed (it has no {SIGNATURE_NAME}): a running Engine installs only "
            "signed kits; use a kit built with engine-iso build --sign-key, or install this one "
            "from a boot medium"
        )
    if not trusted:
        raise UserError(
            "this Engine trusts no kit signer (engine/trust/ on the storage partition holds no "
            "certificate): install from a signed boot medium once, or add the signer's "
            "certificate to engine/trust/"
        )
    with _staged(sums, signature) as tmp:
        work = Path(tmp)
        # First the signature alone (is this what the signer signed?), then who signed it.
        subject = _check_own(work, where)
        (work / "trusted.pem").write_bytes(b"\n".join(trusted.values()))
        trust = _openssl([*_verify_args(work), "-CAfile", str(work / "trusted.pem"),
                          "-partial_chain", "-purpose", "any"])  # fmt: skip
        if trust.returncode != 0:
            raise UserError(
                f"{where} is signed by {subject}, whom this Engine does not trust "
                f"({_verify_error(trust.stderr)}): use a kit signed by a certificate in "
                "engine/trust/ on the storage partition"
            )
    return subject


def check_certificates(certs: dict[str, bytes], where: str) -> None:
    """UserError unless every entry is a certificate openssl can read (build-time check)."""
    if len(certs) > MAX_TRUST_CERTS:
        raise UserError(f"{where}: at most {MAX_TRUST_CERTS} trust certificates fit on a medium")
    for name, pem in certs.items():
        check_trust_cert(name, pem, where)
        if not certificate_subject(pem):
            raise UserError(f"{where}: {name} is not a certificate openssl can read")
