"""Put the payload's signed UEFI boot chain on an Engine ESP (layout: ../bootchain.py).

- Install: stage_chain() writes every file into the (staged or mounted) new ESP.
- Upgrade: update_chain() replaces the chain on a live ESP only when the payload's chain is
  newer (the caller decides, bootchain.chain_is_newer), one directory after the other:
  EFI/debian (the stub config, GRUB, the MOK manager, shim), then EFI/BOOT (GRUB, the MOK
  manager, BOOTX64.EFI). In each directory every new file is first written beside the old one
  (<name>.new) and synced, then renamed over it, GRUB before shim: an old shim starts a new
  GRUB, while a new shim may revoke an old GRUB through SBAT. While one directory changes the
  other holds a whole chain (old or new), and the version record is written last, so a power
  cut at any point leaves a chain the firmware can start.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from engine_installer.disks import esp
from engine_installer.ondisk.bootchain import (
    RECORD_PATH,
    STUB_PATH,
    chain_paths,
    record_bytes,
    removable_paths,
    stub_config,
    vendor_paths,
)
from engine_installer.ondisk.payload import Manifest, read_artifact


def _chain_bytes(manifest: Manifest) -> dict[str, bytes]:
    """The chain's files, checked against the manifest (they may be read in place from an ISO)."""
    return {name: read_artifact(a) for name, a in manifest.chain_artifacts().items()}


def stage_chain(esp_dir: Path, manifest: Manifest) -> None:
    """Write the chain, its stub config and its version record into esp_dir (a new ESP)."""
    data = _chain_bytes(manifest)
    for artifact, path in chain_paths():
        target = esp_dir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data[artifact])
    (esp_dir / STUB_PATH).write_text(stub_config())
    record = esp_dir / RECORD_PATH
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_bytes(record_bytes(manifest.boot_chain))


def update_chain(
    device: str, manifest: Manifest, vendor_done: Callable[[], None] = lambda: None
) -> None:
    """Replace the chain on the ESP at device (EFI/debian, then EFI/BOOT, then the record).
    vendor_done runs once EFI/debian holds the whole new chain (the firmware boot entry
    points there), before the removable path changes."""
    data = _chain_bytes(manifest)
    vendor = [(STUB_PATH, stub_config().encode())]
    vendor += [(path, data[artifact]) for artifact, path in vendor_paths()]
    esp.replace_files(device, vendor)
    vendor_done()
    esp.replace_files(device, [(path, data[artifact]) for artifact, path in removable_paths()])
    esp.write_file(device, RECORD_PATH, record_bytes(manifest.boot_chain))
