"""Signed media: the CMS signature of SHA256SUMS as engine-iso build makes it, checked by the
Engine against its trust store and by a stock `openssl cms -verify` (no root)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pycdlib
import pytest

from engine_installer.base.errors import UserError
from engine_installer.iso import signing
from engine_installer.ondisk.medium import check_iso, open_medium
from engine_installer.ondisk.signature import (
    SIGNATURE_NAME,
    load_trust_store,
    verify_sums_signature,
)
from tests.kit_helpers import make_key
from tests.unit.test_iso_assembly import build, small_tree

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl missing")


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    base = tmp_path_factory.mktemp("keys")
    return {name: make_key(base, name, f"Engine {name}") for name in ("vendor", "stranger")}


def signed_iso(tmp_path: Path, key: Path, cert: Path, name: str = "kit.iso") -> Path:
    files = small_tree(tmp_path) | signing.trust_files([cert], set())
    out = tmp_path / name
    from engine_installer.iso import iso_image

    iso_image.assemble(
        out, files, volume_id="ENGINE_5_0", bios_boot="boot/grub/bios.img",
        efi_boot="boot/grub/efi.img", boot_catalog="boot/grub/boot.cat", epoch=1_700_000_000,
        disk_signature=b"\x01\x02\x03\x04", sign=signing.signer(key, cert),
    )  # fmt: skip
    return out


def extract(iso: Path, rel: str, target: Path) -> Path:
    reader = pycdlib.PyCdlib()
    reader.open(str(iso))
    try:
        reader.get_file_from_iso(str(target), rr_path=f"/{rel}")
    finally:
        reader.close()
    return target


def test_signed_medium_verifies_with_stock_openssl_and_the_engine(tmp_path, keys):
    key, cert = keys["vendor"]
    iso = signed_iso(tmp_path, key, cert)
    check_iso(iso)  # the signature file is the one file SHA256SUMS does not list
    medium = open_medium(iso)
    assert medium.signature and medium.manifest.trust_certs == {"vendor.pem": cert.read_bytes()}
    sums = extract(iso, "SHA256SUMS", tmp_path / "SHA256SUMS")
    assert sums.read_bytes() == medium.sums and b"engine/trust/vendor.pem" in medium.sums
    sig = extract(iso, SIGNATURE_NAME, tmp_path / SIGNATURE_NAME)
    stock = subprocess.run(
        ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(sig),
         "-content", str(sums), "-CAfile", str(cert), "-partial_chain", "-purpose", "any",
         "-out", "/dev/null"], capture_output=True, text=True,
    )  # fmt: skip
    assert stock.returncode == 0, stock.stderr
    assert "Verification successful" in stock.stderr
    signer = verify_sums_signature(medium.sums, medium.signature, {"v.pem": cert.read_bytes()}, "k")
    assert signer == "CN=Engine vendor"


def test_unsigned_wrong_signer_tampered_and_no_trust_are_refused(tmp_path, keys):
    key, cert = keys["vendor"]
    trusted = {"vendor.pem": cert.read_bytes()}
    medium = open_medium(signed_iso(tmp_path, key, cert))
    with pytest.raises(UserError, match=r"^kit\.iso is not signed \(it has no SHA256SUMS\.p7s\)"):
        verify_sums_signature(medium.sums, None, trusted, "kit.iso")
    with pytest.raises(UserError, match="this Engine trusts no kit signer"):
        verify_sums_signature(medium.sums, medium.signature, {}, "kit.iso")
    stranger = {"s.pem": keys["stranger"][1].read_bytes()}
    with pytest.raises(UserError) as caught:
        verify_sums_signature(medium.sums, medium.signature, stranger, "kit.iso")
    assert str(caught.value).startswith(
        "kit.iso is signed by CN=Engine vendor, whom this Engine does not trust ("
    )
    tampered = medium.sums.replace(b"engine/vmlinuz", b"engine/vmlinuX")
    with pytest.raises(UserError, match="its signature does not match its SHA256SUMS"):
        verify_sums_signature(tampered, medium.signature, trusted, "kit.iso")
    damaged = medium.signature[:-10] + bytes(10)
    with pytest.raises(UserError, match="its signature does not match its SHA256SUMS"):
        verify_sums_signature(medium.sums, damaged, trusted, "kit.iso")


def test_signing_is_reproducible_and_keeps_the_boot_layout(tmp_path, keys):
    key, cert = keys["vendor"]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = signed_iso(tmp_path / "a", key, cert)
    second = signed_iso(tmp_path / "b", key, cert)
    assert first.read_bytes() == second.read_bytes()
    unsigned, _layout = build(tmp_path / "a", "unsigned.iso")
    # The same El Torito entries, and the same hybrid MBR: GRUB's code, pointing at the BIOS
    # image (where it lies on each medium) and the EFI image as partition 2.
    for iso in (first, unsigned):
        reader = pycdlib.PyCdlib()
        reader.open(str(iso))
        try:
            catalog = reader.eltorito_boot_catalog
            entries = [catalog.initial_entry, *(s.section_entries[0] for s in catalog.sections)]
            assert [catalog.validation_entry.platform_id, catalog.sections[0].platform_id] == [
                0,
                0xEF,
            ]
            bios = reader.get_record(rr_path="/boot/grub/bios.img").extent_location()
            efi = reader.get_record(rr_path="/boot/grub/efi.img").extent_location()
            assert [e.load_rba for e in entries] == [bios, efi]
        finally:
            reader.close()
        mbr = iso.read_bytes()[:512]
        assert mbr[:0x1B0] == unsigned.read_bytes()[:0x1B0]
        assert int.from_bytes(mbr[0x1B0:0x1B8], "little") == bios * 4 + 4
        assert int.from_bytes(mbr[0x1CE + 8 : 0x1CE + 12], "little") == efi * 4
        assert mbr[0x1CE + 4] == 0xEF and mbr[510:512] == b"\x55\xaa"


def test_an_ecdsa_key_signs_too(tmp_path):
    folder = tmp_path / "ec"
    folder.mkdir()
    key, cert = folder / "key.pem", folder / "ec.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "30", "-subj", "/CN=ec"],
        check=True, capture_output=True,
    )  # fmt: skip
    medium = open_medium(signed_iso(tmp_path, key, cert))
    assert verify_sums_signature(medium.sums, medium.signature, {"ec.pem": cert.read_bytes()}, "k")


def test_build_refuses_a_key_that_is_encrypted_or_not_the_certificates(tmp_path, keys):
    key, cert = keys["vendor"]
    signing.check_sign_key(key, cert)
    with pytest.raises(UserError, match="does not belong to --sign-key"):
        signing.check_sign_key(key, keys["stranger"][1])
    locked = tmp_path / "locked.pem"
    subprocess.run(["openssl", "pkey", "-in", str(key), "-aes256", "-passout", "pass:x",
                    "-out", str(locked)], check=True, capture_output=True)  # fmt: skip
    with pytest.raises(UserError, match="is not an unencrypted private key"):
        signing.check_sign_key(locked, cert)
    with pytest.raises(UserError, match="does not exist"):
        signing.check_sign_key(tmp_path / "nope.pem", cert)
    with pytest.raises(UserError, match="not a certificate openssl can read"):
        fake = tmp_path / "fake.pem"
        fake.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
        signing.trust_files([fake], set())


def test_the_trust_store_reads_only_certificates(tmp_path, keys):
    store = tmp_path / "trust"
    store.mkdir()
    (store / "vendor.pem").write_bytes(keys["vendor"][1].read_bytes())
    (store / "notes.txt").write_text("not a certificate")
    (store / ".vendor.pem.tmp").write_bytes(b"-----BEGIN CERTIFICATE-----")
    (store / "empty.pem").write_text("")
    assert list(load_trust_store(store)) == ["vendor.pem"]
    assert load_trust_store(tmp_path / "missing") == {}
