"""Registers the loop-device fixtures and the root-only collection hook.

The helpers live in diskhelpers.py (and faulthelpers.py) and tests import them from there: two
conftest.py files (this one and tests/e2e's) would both be the module "conftest", so importing
from "conftest" picks whichever pytest loaded first.
"""

from diskhelpers import (  # noqa: F401  (pytest finds fixtures and hooks by name here)
    log_dir,
    make_loop,
    payloads,
    pytest_collection_modifyitems,
)
from faulthelpers import engine45_image  # noqa: F401  (session-wide: shared by three modules)
