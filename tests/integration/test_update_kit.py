"""Update kits on a running Engine, on real loop disks: Engine 4.5 installed from a signed
medium (its trust store filled from it), storage mounted read-write and slot A read-only as the
running Engine has them, then `engine-update` (the real console script) with good and bad kits,
and seeded kills during apply. Checked with independent readers: sha256 of whole partitions,
grub-editenv, mtools, the files on the mounted storage."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from diskhelpers import (
    VENV_BIN,
    device_sha256,
    engine_installer,
    esp_file,
    grubenv,
    marker,
    part,
    run,
    write_answers,
)

from engine_installer.disks.esp import rewrite_in_place
from engine_installer.ondisk.bootenv import BootEnv, bootenv_bytes
from qemu import disks as qemu_disks
from tests.iso_helpers import corrupt_file_in_iso
from tests.kit_helpers import make_key, make_kit

VMS = {"web": ("shared", "4.5"), "build": ("custom", "4.5"), "desk": ("local", "4.5")}
KILL_RUNS = int(os.environ.get("ENGINE_KIT_KILL_RUNS", "10"))
KILL_SEED = int(os.environ.get("ENGINE_KIT_KILL_SEED", "4512"))


@pytest.fixture(scope="module")
def kits(tmp_path_factory, payloads) -> dict[str, Path]:
    """Signed media of the test payloads, and bad kits (each with one thing wrong)."""
    work = tmp_path_factory.mktemp("kits")
    key, cert = make_key(work, "engine-kits", "Engine kits")
    other_key, other_cert = make_key(work, "someone-else", "Someone else")
    result = {
        "cert": cert,
        "4.5": make_kit(payloads["4.5"], work / "engine-4.5.iso", key, cert),
        "5.0": make_kit(payloads["5.0"], work / "engine-5.0.iso", key, cert),
        "unsigned": make_kit(payloads["5.0"], work / "unsigned-5.0.iso"),
        "wrong signer": make_kit(payloads["5.0"], work / "other-5.0.iso", other_key, other_cert),
    }
    tampered = work / "tampered-5.0.iso"
    shutil.copyfile(result["5.0"], tampered)
    corrupt_file_in_iso(tampered, "/engine/root.img", offset=3 * 1024 * 1024)
    result["tampered byte"] = tampered
    sums = work / "tampered-sums-5.0.iso"
    shutil.copyfile(result["5.0"], sums)
    corrupt_file_in_iso(sums, "/SHA256SUMS", offset=5)
    result["tampered SHA256SUMS"] = sums
    truncated = work / "truncated-5.0.iso"
    truncated.write_bytes(result["5.0"].read_bytes()[: 8 * 1024 * 1024])
    result["truncated"] = truncated
    tree = work / "not-engine"
    (tree / "docs").mkdir(parents=True)
    (tree / "docs" / "readme.txt").write_text("a DVD of documents\n")
    other = work / "documents.iso"
    run(["xorriso", "-as", "mkisofs", "-R", "-J", "-o", str(other), str(tree)])
    result["not an Engine ISO"] = other
    return result


def engine_update(*args: str, disk: str) -> subprocess.CompletedProcess:
    """The real console script, as a management agent runs it."""
    return run([str(VENV_BIN / "engine-update"), "--disk", disk, *args], check=False)


class Running:
    """An installed Engine 4.5 disk mounted as its running system has it."""

    def __init__(self, disk: str, storage: Path, root: Path) -> None:
        self.disk, self.storage, self.root = disk, storage, root

    def vm_hashes(self) -> dict[str, str]:
        return {
            str(p.relative_to(self.storage)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((self.storage / "vms").rglob("*"))
            if p.is_file()
        }

    def status(self) -> dict:
        proc = engine_update("status", "--json", disk=self.disk)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def untouched(self) -> dict[str, object]:
        """What an update never writes: slot A, the boot loader (MBR code, BIOS core, the ESP's
        GRUB files), and every VM byte."""
        with open(self.disk, "rb") as handle:
            mbr = handle.read(440)
        return {
            "slot A": device_sha256(part(self.disk, 3)),
            "bios core": device_sha256(part(self.disk, 1)),
            "mbr": mbr,
            "grub": [
                esp_file(self.disk, p) for p in ("EFI/BOOT/BOOTX64.EFI", "boot/grub/grub.cfg")
            ],
            "vms": self.vm_hashes(),
        }


@contextlib.contextmanager
def _mount(device: str, target: Path, options: str) -> Iterator[Path]:
    target.mkdir()
    run(["mount", "-o", options, device, str(target)])
    try:
        yield target
    finally:
        run(["umount", str(target)], check=False)


@pytest.fixture
def running(make_loop, kits, tmp_path) -> Iterator[Running]:
    disk = make_loop()
    answers = write_answers(tmp_path / "install.toml", disk, kits["4.5"], action="install")
    proc = engine_installer("--answers", str(answers))
    assert proc.returncode == 0, proc.stderr
    assert "Adding the medium's update-kit certificate to the trust store" in proc.stdout
    qemu_disks.add_vms(disk, VMS)
    with (
        _mount(part(disk, 5), tmp_path / "storage", "rw") as storage,
        _mount(part(disk, 3), tmp_path / "root", "ro") as root,
    ):
        trust = storage / "engine/trust/engine-kits.pem"
        assert trust.read_bytes() == kits["cert"].read_bytes()  # filled from the medium
        yield Running(disk, storage, root)


def test_apply_a_signed_kit_on_the_running_engine(running, kits, tmp_path):
    disk = running.disk
    assert running.status()["status"] == ""
    before = running.untouched()
    proc = engine_update("apply", str(kits["5.0"]), "--lab-override", disk=disk)
    assert proc.returncode == 0, proc.stderr
    assert "Checking engine-5.0.iso: Engine 5.0 (build 50), signed by CN=Engine kits" in proc.stdout
    assert "Step 1 of 9: Writing Engine 5.0 (build 50) into slot B" in proc.stdout
    assert proc.stdout.rstrip().endswith("Update status: Installed (Reboot Required)")
    assert "build (custom, PV drivers 4.5.0)" in proc.stdout
    assert running.untouched() == before  # slot A, boot loader, VM files: byte-identical
    assert "VERSION=5.0" in run(["debugfs", "-R", "cat /etc/engine-release", part(disk, 4)]).stdout
    env = grubenv(disk, tmp_path)
    assert (env["engine_active"], env["engine_trial"], env["engine_tries"]) == ("A", "B", "3")
    assert (marker(disk)["version"], marker(disk)["slot"]) == ("5.0", "B")
    status = running.status()
    assert status["status"] == "Installed (Reboot Required)"
    assert status["kit"] == {
        "file": str(kits["5.0"]),
        "version": "5.0",
        "build": "50",
        "signer": "CN=Engine kits",
    }
    assert (status["engine"]["version"], status["target_slot"]) == ("4.5", "B")
    report = json.loads((running.storage / status["report"]).read_text())
    assert (report["action"], report["from_version"], report["to_version"]) == (
        "upgrade",
        "4.5",
        "5.0",
    )
    assert report["vms_needing_pv_upgrade"] == ["build", "desk"]
    config = json.loads((running.storage / "engine/config.json").read_text())
    assert (config["installed_version"], config["keyboard"]) == ("5.0", "us")
    # The file a management agent reads directly says the same.
    on_disk = json.loads((running.storage / "engine/update-status.json").read_text())
    assert on_disk["status"] == "Installed (Reboot Required)"

    # The restart: slot B boots and marks itself good (as the sample Engine's init does).
    rewrite_in_place(part(disk, 2), "boot/grub/grubenv", bootenv_bytes(BootEnv(active="B")))
    status = running.status()
    assert (status["status"], status["engine"]) == (
        "",
        {"version": "5.0", "build": "50", "slot": "B"},
    )
    assert status["explanation"] == "No update in progress; Engine 5.0 (build 50) in slot B boots."
    human = engine_update("status", disk=disk).stdout
    assert human.startswith("Update status: (blank)\nNo update in progress; Engine 5.0")


def test_grub_falls_back_after_the_trial_and_status_says_so(running, kits, tmp_path):
    proc = engine_update("apply", str(kits["5.0"]), "--lab-override", disk=running.disk)
    assert proc.returncode == 0, proc.stderr
    # Three trial boots that never marked themselves good: grub.cfg clears the trial.
    env = part(running.disk, 2)
    rewrite_in_place(
        env, "boot/grub/grubenv", bootenv_bytes(BootEnv(active="A", trial="B", tries=0))
    )
    status = running.status()
    assert status["status"] == "Failed"
    assert status["reason"] == "Engine 5.0 did not start; Engine 4.5 is running again"
    assert status["engine"]["version"] == "4.5"
    human = engine_update("status", disk=running.disk).stdout.splitlines()
    assert human[:2] == [
        "Update status: Failed",
        "Engine 5.0 did not start; Engine 4.5 is running again.",
    ]


BAD = [
    ("unsigned", "unsigned-5.0.iso is not signed (it has no SHA256SUMS.p7s): a running Engine "
                 "installs only signed kits"),
    ("wrong signer", "other-5.0.iso is signed by CN=Someone else, whom this Engine does not trust"),
    ("tampered byte", "engine/root.img on tampered-5.0.iso does not match its checksum"),
    ("tampered SHA256SUMS", "tampered-sums-5.0.iso: its signature does not match its SHA256SUMS"),
    ("truncated", "truncated-5.0.iso is truncated (8388608 of "),
    ("not an Engine ISO", "documents.iso has no /SHA256SUMS: this is not an Engine installer"),
    ("not enough space", "not enough space on the storage partition for the update's "
                         "configuration, report and log (needs 16 MiB, "),
]  # fmt: skip


def test_bad_kits_fail_with_one_sentence_and_change_nothing(running, kits, tmp_path):
    disk = running.disk
    before = running.untouched()
    slot_b = device_sha256(part(disk, 4))
    env, mark = grubenv(disk, tmp_path), marker(disk)
    for name, words in BAD:
        kit = kits["5.0" if name == "not enough space" else name]
        filler = running.storage / "filler"
        if name == "not enough space":
            stats = os.statvfs(running.storage)
            room = stats.f_bavail * stats.f_frsize - 8 * 1024 * 1024
            run(["fallocate", "-l", str(room), str(filler)])
        proc = engine_update("apply", str(kit), "--lab-override", disk=disk)
        filler.unlink(missing_ok=True)
        assert proc.returncode == 2, (name, proc.stdout, proc.stderr)
        [line] = proc.stderr.strip().splitlines()
        assert line.startswith("error: ") and words in line, (name, line)
        status = running.status()
        assert (status["status"], status["reason"]) == (
            "Failed",
            line.removeprefix("error: "),
        ), name
        # Found before writing: the inactive slot too is byte for byte what it was.
        assert device_sha256(part(disk, 4)) == slot_b, name
        assert running.untouched() == before, name
        assert (grubenv(disk, tmp_path), marker(disk)) == (env, mark), name
    # After all that, the good kit installs.
    proc = engine_update("apply", str(kits["5.0"]), "--lab-override", disk=disk)
    assert proc.returncode == 0, proc.stderr
    assert running.status()["status"] == "Installed (Reboot Required)"


def test_an_older_kit_is_refused_naming_the_vms(make_loop, kits, payloads, tmp_path):
    """A running 5.0 with VMs published for 5.0 does not take the 4.5 kit (exit 3)."""
    from diskhelpers import build_payload

    newer = tmp_path / "5.1"
    newer.mkdir()
    key_dir = kits["cert"].parent
    kit51 = make_kit(
        build_payload(newer, "5.1", "51"), tmp_path / "engine-5.1.iso", key_dir / "key.pem",
        kits["cert"],
    )  # fmt: skip
    disk = make_loop()
    answers = write_answers(tmp_path / "a.toml", disk, kit51, action="install")
    assert engine_installer("--answers", str(answers)).returncode == 0
    qemu_disks.add_vms(disk, {"render": ("custom", "5.1"), "web": ("shared", "4.5")})
    slot_b = device_sha256(part(disk, 4))
    proc = engine_update("apply", str(kits["5.0"]), "--lab-override", disk=disk)
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.strip() == (
        "error: the kit holds Engine 5.0, older than the running Engine 5.1; a downgrade stops "
        "VMs published for the newer Engine: render (custom, for 5.1): use a kit of Engine 5.1 "
        "or newer"
    )
    assert device_sha256(part(disk, 4)) == slot_b
    status = json.loads(engine_update("status", "--json", disk=disk).stdout)
    assert status["status"] == "Failed" and "render (custom, for 5.1)" in status["reason"]


def test_stage_apply_and_cancel(running, kits):
    disk = running.disk
    proc = engine_update("stage", str(kits["unsigned"]), disk=disk)
    assert proc.returncode == 2 and "is not signed" in proc.stderr
    assert running.status()["status"] == "Failed"
    assert not list((running.storage / "engine/updates").glob("*"))

    proc = engine_update("stage", str(kits["5.0"]), disk=disk)
    assert proc.returncode == 0, proc.stderr
    staged = running.storage / "engine/updates/engine-5.0.iso"
    assert staged.read_bytes() == kits["5.0"].read_bytes()
    status = running.status()
    assert status["status"] == "Pending"
    assert status["kit"]["file"] == "engine/updates/engine-5.0.iso"
    proc = engine_update("cancel", disk=disk)
    assert proc.returncode == 0, proc.stderr
    assert running.status()["status"] == "" and not staged.exists()

    # Not enough space for the kit on storage: Failed, nothing left behind.
    stats = os.statvfs(running.storage)
    room = stats.f_bavail * stats.f_frsize - kits["5.0"].stat().st_size
    filler = running.storage / "filler"
    run(["fallocate", "-l", str(room), str(filler)])
    proc = engine_update("stage", str(kits["5.0"]), disk=disk)
    filler.unlink()
    assert proc.returncode == 2
    assert "not enough space on the storage partition for the kit engine-5.0.iso" in proc.stderr
    assert not list((running.storage / "engine/updates").iterdir())

    assert engine_update("stage", str(kits["5.0"]), disk=disk).returncode == 0
    proc = engine_update("apply", "--lab-override", disk=disk)  # the staged kit
    assert proc.returncode == 0, proc.stderr
    assert running.status()["status"] == "Installed (Reboot Required)"
    assert not staged.exists()  # written into slot B: the copy is gone
    proc = engine_update("cancel", disk=disk)
    assert proc.returncode == 3 and "waits for a restart" in proc.stderr
    proc = engine_update("stage", str(kits["5.0"]), disk=disk)
    assert proc.returncode == 3 and "waits for a restart" in proc.stderr


def test_unsigned_media_install_from_a_boot_medium_but_never_online(make_loop, kits, tmp_path):
    disk = make_loop()
    answers = write_answers(tmp_path / "a.toml", disk, kits["unsigned"], action="install")
    proc = engine_installer("--answers", str(answers))
    assert proc.returncode == 0, proc.stderr
    assert "trust store" not in proc.stdout
    proc = engine_update("apply", str(kits["5.0"]), "--lab-override", disk=disk)
    assert proc.returncode == 2
    assert "this Engine trusts no kit signer" in proc.stderr


def test_engine_iso_check_names_the_signer(kits):
    iso = VENV_BIN / "engine-iso"
    proc = run([str(iso), "check", str(kits["5.0"]), "--trust", str(kits["cert"])], check=False)
    assert proc.returncode == 0, proc.stderr
    assert "signed by CN=Engine kits, a trusted signer: an update kit" in proc.stdout
    proc = run([str(iso), "check", str(kits["wrong signer"]), "--trust", str(kits["cert"])],
               check=False)  # fmt: skip
    assert proc.returncode == 2 and "whom this Engine does not trust" in proc.stderr


def _apply_and_kill(disk: str, kit: Path, step: int, delay: float) -> str:
    """Start apply, SIGKILL it `delay` s after its step `step` began (0: while it checks the
    kit); returns the last line it printed."""
    proc = subprocess.Popen(
        [str(VENV_BIN / "engine-update"), "--disk", disk, "apply", str(kit), "--lab-override"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    wanted = re.compile(rf"^Step {step} of \d+:" if step else r"^Checking ")
    last = ""
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            last = line.strip()
            if wanted.match(last):
                time.sleep(delay)
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return last


def test_kills_during_apply_then_status_and_a_retry(running, kits, tmp_path):
    """Seeded SIGKILLs at every phase of apply; each time status explains the disk and a
    retried apply completes. (Real power cuts, cache lost, are the QEMU cells.)"""
    disk = running.disk
    before = running.untouched()
    rng = random.Random(KILL_SEED)
    outcomes = []
    for run_number in range(KILL_RUNS):
        step, delay = rng.randint(0, 10), rng.uniform(0.0, 0.3)
        last = _apply_and_kill(disk, kits["5.0"], step, delay)
        status = running.status()
        env = grubenv(disk, tmp_path)
        armed = (env["engine_active"], env.get("engine_trial", ""), env.get("engine_tries", "0"))
        outcomes.append(f"run {run_number}: killed at [{last}] +{delay:.2f}s → {status['status']}")
        assert armed in (("A", "", "0"), ("A", "B", "3")), outcomes[-1]
        assert status["status"] in ("Failed", "Installed (Reboot Required)"), outcomes[-1]
        if status["status"] == "Failed":
            assert status["reason"].startswith("the apply of Engine 5.0 was interrupted"), status
            assert status["reason"].endswith(": run engine-update apply again")
            switched = armed[1] == "B"
            assert ("armed for a trial boot" in status["reason"]) == switched, status
        assert running.untouched() == before, outcomes[-1]
        proc = engine_update("apply", str(kits["5.0"]), "--lab-override", disk=disk)
        assert proc.returncode == 0, f"{outcomes[-1]}: retry failed: {proc.stderr}"
        assert running.status()["status"] == "Installed (Reboot Required)"
        assert running.untouched() == before
    env = grubenv(disk, tmp_path)
    assert (env["engine_active"], env["engine_trial"], env["engine_tries"]) == ("A", "B", "3")
    print("\n" + "\n".join(outcomes))


def test_bad_input_and_a_second_engine_update_change_nothing(running, kits):
    """A typo is one error line and leaves the status alone; while an engine-update works on
    the disk, another one is refused and status reports the one at work."""
    from engine_installer.disks.lock import lock_path

    disk = running.disk
    proc = engine_update("apply", "/nowhere/engine-5.0.iso", disk=disk)
    assert proc.returncode == 2
    assert (
        proc.stderr.strip() == "error: /nowhere/engine-5.0.iso not found: check the path to the kit"
    )
    proc = engine_update("stage", str(kits["5.0"].parent), disk=disk)
    assert (
        proc.returncode == 2
        and "is a directory: a kit is an Engine installer ISO file" in proc.stderr
    )
    assert not (running.storage / "engine/update-status.json").exists()
    proc = engine_update("status", disk="/dev/nowhere")
    assert proc.returncode == 2 and proc.stderr.startswith("error: /dev/nowhere does not exist")
    proc = engine_update("status", disk=part(disk, 5))
    assert proc.returncode == 2 and "is a partition, not a whole disk" in proc.stderr

    fd = os.open(lock_path(disk, "update"), os.O_RDWR | os.O_CREAT)
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, b"pid 4242 on ttyS1", 0)
        proc = engine_update("apply", str(kits["5.0"]), "--lab-override", disk=disk)
        assert proc.returncode == 3
        assert "engine-update (pid 4242 on ttyS1) is already working on" in proc.stderr
        status = running.status()
        assert (status["status"], status["in_progress"]) == ("", "pid 4242 on ttyS1")
        assert status["explanation"].startswith("engine-update is at work (pid 4242 on ttyS1)")
    finally:
        os.close(fd)
    assert not (running.storage / "engine/update-status.json").exists() or (
        running.status()["status"] == ""
    )
