"""Hooks for the whole test run.

`make test` runs every tier in one pytest run with two pytest-xdist workers (`-n 2 --dist
loadgroup`, one per core of a CI machine). The unit and integration tests form one group that
a single worker runs in order, as they are written to run; the end-to-end cells are
independent and spread over both workers, so one core boots VMs while the other runs the host
tiers. A plain `pytest` (no -n) runs everything in order as before.
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
