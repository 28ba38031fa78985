"""pytest imports test modules by basename (rootdir-relative "prepend" mode), so two test files
with one name in different tiers stop the whole run at collection. Catch that here, by name."""

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent


def test_every_test_module_name_is_unique_across_tiers() -> None:
    names = Counter(path.name for path in TESTS.rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
