"""Building for Secure Boot: the payload manifest's chain fields, own-key signing input checks
and the re-signed payload an own-key medium carries (sbsign with OVMF's snakeoil key)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from engine_installer.base.errors import UserError
from engine_installer.iso import builder, signed_chain
from engine_installer.ondisk.payload import MANIFEST_NAME, load_manifest, verify_payload
from qemu.harness import SNAKEOIL_CERT, SNAKEOIL_KEY
from tests.iso_helpers import fake_payload


def chain_payload(tmp_path: Path) -> Path:
    """A fake payload carrying the host's signed chain (as sample-payload makes it)."""
    payload = fake_payload(tmp_path / "payload")
    chain = signed_chain.host_chain()
    data = json.loads((payload / MANIFEST_NAME).read_text())
    (payload / "efi").mkdir()
    for name, source in chain.files().items():
        target = payload / "efi" / f"{name}.efi"
        shutil.copyfile(source, target)
        data["artifacts"][name] = {
            "path": f"efi/{name}.efi",
            "sha256": builder.sha256_file(target),
            "size": target.stat().st_size,
        }
    data.update(boot_chain=chain.versions, secure_boot=True)
    (payload / MANIFEST_NAME).write_text(json.dumps(data))
    return payload


def needs_chain() -> None:
    if not signed_chain.SHIM.is_file() or shutil.which("sbsign") is None:
        pytest.skip("shim-signed / sbsigntool not installed (make setup)")


def test_manifest_chain_fields_are_checked(tmp_path):
    needs_chain()
    payload = chain_payload(tmp_path)
    manifest = load_manifest(payload)
    assert manifest.secure_boot and sorted(manifest.chain_artifacts()) == ["grub", "mm", "shim"]
    verify_payload(manifest)
    data = json.loads((payload / MANIFEST_NAME).read_text())
    for broken, message in (
        (dict(data, secure_boot="yes"), r"secure_boot = \"yes\" is invalid \(true or false\)"),
        ({k: v for k, v in data.items() if k != "boot_chain"} | {"secure_boot": True},
         r"secure_boot = true is invalid \(true only with a boot_chain\)"),
        (dict(data, boot_chain={"shim": "1"}), "boot_chain .* is invalid .the versions of shim"),
        (dict(data, artifacts={k: v for k, v in data["artifacts"].items() if k != "mm"}),
         r"artifacts.mm = null is invalid"),
    ):  # fmt: skip
        (payload / MANIFEST_NAME).write_text(json.dumps(broken))
        with pytest.raises(UserError, match=message):
            load_manifest(payload)
    plain = fake_payload(tmp_path / "plain")
    assert not load_manifest(plain).secure_boot and load_manifest(plain).chain_artifacts() == {}


def test_db_key_needs_its_cert_and_usable_files(tmp_path):
    payload = fake_payload(tmp_path / "p")
    with pytest.raises(UserError, match="--db-key and --db-cert go together"):
        builder.build_iso(payload, tmp_path / "x.iso", db_key=tmp_path / "k")
    with pytest.raises(UserError, match="--db-key .* does not exist"):
        builder.build_iso(payload, tmp_path / "x.iso", db_key=tmp_path / "k", db_cert=SNAKEOIL_CERT)
    needs_chain()
    (tmp_path / "not-a-cert.pem").write_text("hello\n")
    with pytest.raises(UserError, match="not a PEM certificate"):
        signed_chain.check_db_key(SNAKEOIL_KEY, tmp_path / "not-a-cert.pem")
    assert not (tmp_path / "x.iso").exists()


def test_an_encrypted_key_fails_plainly_instead_of_prompting(tmp_path):
    needs_chain()
    with pytest.raises(UserError, match="unencrypted PEM private key"):
        signed_chain.sign_with_db_key(signed_chain.SHIM, tmp_path / "s.efi", SNAKEOIL_KEY,
                                      SNAKEOIL_CERT)  # fmt: skip


def test_own_key_payload_resigns_shim_and_mm_and_rewrites_the_manifest(tmp_path):
    needs_chain()
    key = tmp_path / "db.key"
    subprocess.run(["openssl", "pkey", "-in", str(SNAKEOIL_KEY), "-passin", "pass:snakeoil",
                    "-out", str(key)], check=True, capture_output=True)  # fmt: skip
    payload = chain_payload(tmp_path)
    files = builder.own_key_payload(load_manifest(payload), key, SNAKEOIL_CERT, tmp_path / "w")
    assert sorted(files) == ["engine/efi/mm.efi", "engine/efi/shim.efi", "engine/manifest.json"]
    # The payload as the ISO carries it: the re-signed files verify against the new manifest.
    on_medium = tmp_path / "medium"
    shutil.copytree(payload, on_medium)
    for rel, source in files.items():
        target = on_medium / rel.removeprefix("engine/")
        if isinstance(source, bytes):
            target.write_bytes(source)
        else:
            shutil.copyfile(source, target)
    verify_payload(load_manifest(on_medium))
    listing = subprocess.run(["sbverify", "--list", str(on_medium / "efi/shim.efi")],
                             capture_output=True, text=True).stdout  # fmt: skip
    assert "SnakeOil" in listing and "Microsoft Corporation UEFI CA 2011" in listing
    assert (on_medium / "efi/grub.efi").read_bytes() == signed_chain.GRUB.read_bytes()
