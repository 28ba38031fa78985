"""Put the payload's signed UEFI boot chain on an Engine ESP (layout: ../bootchain.py).

- Install: stage_chain() writes every file into the (staged or mounted) new ESP.
- Upgrade: update_chain() replaces the chain on a live ESP only when the payload's chain is
  newer (the caller decides, bootchain.chain_is_newer). Every new file is first written beside
  the old one (<name>.new), then the new files are renamed over the old in bootchain's order
  (GRUB before shim, the removable-path BOOTX64.EFI last of each pair) and the version record
  is written last, so a power cut at any point leaves a chain the firmware can start: each
  file is whole, old or new, and an old shim starts a new GRUB.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from engine_installer.disks import esp
from engine_installer.ondisk.bootchain import (
    RECORD_PATH,
    STUB_PATH,
    chain_paths,
    record_bytes,
    stub_config,
)
from engine_installer.ondisk.payload import Manifest


def _chain_sources(manifest: Manifest) -> dict[str, Path]:
    return {name: artifact.path for name, artifact in manifest.chain_artifacts().items()}


def stage_chain(esp_dir: Path, manifest: Manifest) -> None:
    """Write the chain, its stub config and its version record into esp_dir (a new ESP)."""
    sources = _chain_sources(manifest)
    for artifact, path in chain_paths():
        target = esp_dir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sources[artifact], target)
    (esp_dir / STUB_PATH).write_text(stub_config())
    record = esp_dir / RECORD_PATH
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_bytes(record_bytes(manifest.boot_chain))


def update_chain(device: str, manifest: Manifest) -> None:
    """Replace the chain on the ESP at device: all new files beside the old, then renamed."""
    sources = _chain_sources(manifest)
    files = [(STUB_PATH, stub_config().encode())]
    files += [(path, sources[artifact].read_bytes()) for artifact, path in chain_paths()]
    esp.replace_files(device, files)
    esp.write_file(device, RECORD_PATH, record_bytes(manifest.boot_chain))
