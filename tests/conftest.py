"""Hooks for the whole test run.

`make test` runs every tier in one pytest run with three pytest-xdist workers (`-n 3 --dist
loadgroup`) on a two-core CI machine. The unit and integration tests form one group that a
single worker runs in order, as they are written to run; they mostly wait (loop devices, the
TUI tests' simulated installs), so the end-to-end cells, which are independent, spread over the
other two workers meanwhile and over all three after. A plain `pytest` (no -n) runs everything
in order as before.

xdist hands the groups out first (largest first), then the other tests in collection order,
keeping up to three queued on each worker. Under xdist, tests marked `long` (minutes each even
alone) are collected before the other end-to-end tests, so they start early and the run does
not end with one worker still in a five-minute cell while the others wait.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HOST_TIERS = {"unit", "integration"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "long: takes minutes even alone; started first under xdist")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the group markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests = Path(__file__).resolve().parent
    for item in items:
        parts = Path(item.path).resolve().relative_to(tests).parts
        if parts[0] in HOST_TIERS:
            item.add_marker(pytest.mark.xdist_group("host"))
    if hasattr(config, "workerinput"):  # an xdist worker: its order is the schedule's
        items.sort(key=lambda item: item.get_closest_marker("long") is None)  # stable
