"""Benchmarks are run by hand, rarely: an API they import can move under them unnoticed.
Each one must at least start and print its usage."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if p.name != "loops.py")


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_starts_and_prints_its_usage(script: str) -> None:
    proc = subprocess.run([sys.executable, str(BENCH / script), "--help"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout
