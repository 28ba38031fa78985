"""Shared fixtures and hooks for the QEMU end-to-end tier.

- Session fixtures build what many cells share once: the sample Engine payloads (4.5, 5.0),
  the tool guest's initramfs, prepared Engine disks (host-side unattended installs on loop
  devices), and the installer ISO (built once when the ISO builder exists).
- On a failure, every serial log, QEMU stderr/command line and screenshot under the test's
  tmp_path is copied to build/e2e-artifacts/<test>/ (ENGINE_E2E_ARTIFACTS overrides).
- Tests marked @pytest.mark.cell("name") form the matrix table printed at the end.
- Every live-system boot that reached screen 1 leaves boot-times-N.json in its workdir
  (qemu/boot_times.py); they are listed at the end, one line per boot, phase by phase.
- Under pytest-xdist the cells run in two workers: each test's report carries its cell and
  boot lines (user_properties) to the controller, which prints the tables; the session
  builds are made once per run, by whichever worker needs them first (shared_build).
"""

from __future__ import annotations

import fcntl
import os
import pickle
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from qemu.harness import qemu_available

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("ENGINE_E2E_ARTIFACTS", REPO / "build" / "e2e-artifacts"))
ARTIFACT_GLOBS = ("*.log", "*.png", "*.stderr", "*.cmdline", "*.toml", "*.txt", "*.json")

_cells: dict[str, dict] = {}
_boots: list[tuple[str, str]] = []  # (test, BootTimes.summary()) per live-system boot


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cell(name): a cell of the end-to-end matrix table")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    """Runs where the test ran (an xdist worker): what the tables need goes on the report."""
    outcome = yield
    report = outcome.get_result()
    marker = item.get_closest_marker("cell")
    if marker is not None:
        report.user_properties.append(("e2e-cell", marker.args[0]))
    tmp = item.funcargs.get("tmp_path") if hasattr(item, "funcargs") else None
    if report.when == "call" and tmp is not None:
        report.user_properties.append(("e2e-boots", _boot_times(item.nodeid, Path(tmp))))
    if report.failed and report.when in ("setup", "call") and tmp is not None:
        _save_artifacts(item.nodeid, Path(tmp))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Runs in the process that prints the summary (the controller under xdist)."""
    for key, value in report.user_properties:
        if key == "e2e-boots":
            _boots.extend((name, summary) for name, summary in value)
        elif key == "e2e-cell":
            cell = _cells.setdefault(value, {"outcome": "passed", "seconds": 0.0})
            cell["seconds"] += report.duration
            if report.failed:
                cell["outcome"] = "FAILED"
            elif report.skipped and cell["outcome"] == "passed":
                # (path, line, reason); a list once it has crossed from an xdist worker
                longrepr = report.longrepr
                reason = longrepr[2] if isinstance(longrepr, tuple | list) else ""
                cell["outcome"] = "skipped: " + str(reason).removeprefix("Skipped: ")


def _boot_times(nodeid: str, tmp: Path) -> list[tuple[str, str]]:
    from qemu.boot_times import BootTimes

    name = nodeid.split("::", 1)[-1]
    lines = []
    for path in sorted(tmp.rglob("boot-times-*.json")):
        where = path.parent.relative_to(tmp).as_posix()
        lines.append((f"{name} {where}".strip(" ."), BootTimes.read(path).summary()))
    return lines


def _save_artifacts(nodeid: str, tmp: Path) -> None:
    dest = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("::", 1)[-1])
    for pattern in ARTIFACT_GLOBS:
        for path in tmp.rglob(pattern):
            if path.is_file() and path.stat().st_size < 64 * 1024**2:
                target = dest / path.relative_to(tmp)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)


def pytest_terminal_summary(terminalreporter) -> None:
    if hasattr(terminalreporter.config, "workerinput"):  # an xdist worker: the controller prints
        return
    if _boots:
        terminalreporter.section("live-system boots: QEMU start to screen 1, by phase (s)")
        for name, summary in _boots:
            terminalreporter.write_line(f"{name}: {summary}")
    if not _cells:
        return
    width = max(len(name) for name in _cells) + 2
    terminalreporter.section("end-to-end matrix")
    terminalreporter.write_line(f"{'cell':<{width}}{'result':<10}seconds")
    total = 0.0
    for name, cell in _cells.items():
        total += cell["seconds"]
        result, _, reason = cell["outcome"].partition(": ")
        line = f"{name:<{width}}{result:<10}{cell['seconds']:7.1f}"
        terminalreporter.write_line(line + (f"  ({reason[:90]})" if reason else ""))
    terminalreporter.write_line(f"{'total':<{width}}{'':<10}{total:7.1f}")


# -- fixtures ------------------------------------------------------------------------------

T = TypeVar("T")


def shared_build(factory: pytest.TempPathFactory, name: str, build: Callable[[Path], T]) -> T:
    """build(an empty directory) once per test run. Without xdist that is once per session;
    with xdist, the first worker to need it builds it under the run's shared temp root while
    holding a lock there, and the others wait and reuse the result (session builds are
    read-only inputs: payloads, ISOs, disk images that the cells copy or overlay)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return build(factory.mktemp(name))
    root = factory.getbasetemp().parent  # pytest-N, shared by this run's workers
    result = root / f"{name}.pickle"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if result.exists():
            return pickle.loads(result.read_bytes())
        workdir = root / name
        shutil.rmtree(workdir, ignore_errors=True)  # a worker that failed building it
        workdir.mkdir()
        value = build(workdir)
        result.write_bytes(pickle.dumps(value))
        return value


def _needs_root_and_qemu() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (loop devices for disk preparation, 9p export of /)")
    if not qemu_available():
        pytest.skip("qemu-system-x86 / ovmf not installed")


@pytest.fixture(scope="session")
def payloads(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Sample Engine payloads 4.5 (build 45) and 5.0 (build 50): real kernels, bootable."""
    _needs_root_and_qemu()
    from engine_installer.iso.sample_payload import build_sample_payload

    def build(base: Path) -> dict[str, Path]:
        return {
            "4.5": build_sample_payload("4.5", base / "4.5", build="45").parent,
            "5.0": build_sample_payload("5.0", base / "5.0", build="50").parent,
        }

    return shared_build(tmp_path_factory, "payloads", build)


@pytest.fixture(scope="session")
def tool_initramfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _needs_root_and_qemu()
    from qemu.guest import build_initramfs, guest_kernel

    kernel = guest_kernel()
    if kernel is None:
        pytest.skip("no kernel in /boot (linux-image-amd64)")
    return shared_build(tmp_path_factory, "tool-guest", lambda d: build_initramfs(d, kernel))


@pytest.fixture(scope="session")
def engine45_disk(tmp_path_factory, payloads) -> tuple[Path, dict[str, str]]:
    """A raw laptop disk with Engine 4.5 (slot A) and three VMs, installed on the host by the
    real unattended installer. Read-only base: tests use qcow2 overlays or copies."""
    from qemu.disks import SAMPLE_VMS

    def build(workdir: Path) -> tuple[Path, dict[str, str]]:
        return _read_only_disk(workdir / "engine-4.5.img", payloads["4.5"], SAMPLE_VMS)

    return shared_build(tmp_path_factory, "disk45", build)


@pytest.fixture(scope="session")
def engine50_disk(tmp_path_factory, payloads) -> tuple[Path, dict[str, str]]:
    """Engine 5.0 with VMs of which two were published for 5.0 (they stop running on 4.5)."""
    vms = {
        "finance-desktop": ("shared", "5.0"),
        "field-notes": ("local", "5.0"),
        "old-build-box": ("custom", "4.5"),
    }

    def build(workdir: Path) -> tuple[Path, dict[str, str]]:
        return _read_only_disk(workdir / "engine-5.0.img", payloads["5.0"], vms)

    return shared_build(tmp_path_factory, "disk50", build)


def _read_only_disk(image: Path, payload: Path, vms: dict) -> tuple[Path, dict[str, str]]:
    from qemu.disks import install_on_image

    hashes = install_on_image(image, payload, vms=vms)
    image.chmod(0o444)
    return image, hashes


def run_checked(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=True, **kwargs)


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.monotonic()

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.start


@pytest.fixture(scope="session")
def installer_iso(tmp_path_factory) -> Path:
    """The installer ISO (Engine 5.0 sample payload), built once per session from the cached
    live base (ENGINE_E2E_ISO=FILE reuses a prebuilt one)."""
    _needs_root_and_qemu()
    prebuilt = os.environ.get("ENGINE_E2E_ISO")
    if prebuilt:
        return Path(prebuilt)
    from tests.iso_helpers import build_real_iso

    return shared_build(tmp_path_factory, "installer-iso", build_real_iso)


@pytest.fixture(scope="session")
def installer_iso_45(tmp_path_factory) -> Path:
    """An Engine 4.5 installer ISO (for the downgrade cell); ENGINE_E2E_ISO_45 reuses one."""
    _needs_root_and_qemu()
    prebuilt = os.environ.get("ENGINE_E2E_ISO_45")
    if prebuilt:
        return Path(prebuilt)
    from tests.iso_helpers import build_real_iso

    return shared_build(tmp_path_factory, "installer-iso-45",
                        lambda d: build_real_iso(d, version="4.5"))  # fmt: skip
