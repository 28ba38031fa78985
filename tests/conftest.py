"""Hooks for the whole test run.

`make test` runs every tier in one pytest run with three pytest-xdist workers (`-n 3 --dist
loadgroup`) on a two-core CI machine. The unit and integration tests form one group that a
single worker runs in order, as they are written to run; they mostly wait (loop devices, the
TUI tests' simulated installs), so the end-to-end cells, which are independent, spread over the
other two workers meanwhile and over all three after. A plain `pytest` (no -n) runs everything
in order as before.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HOST_TIERS = {"unit", "integration"}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the group markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests = Path(__file__).resolve().parent
    for item in items:
        parts = Path(item.path).resolve().relative_to(tests).parts
        if parts[0] in HOST_TIERS:
            item.add_marker(pytest.mark.xdist_group("host"))
