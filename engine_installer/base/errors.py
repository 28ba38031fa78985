"""User-facing errors: one line naming the problem and the fix, never a traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable


class UserError(Exception):
    """A mistake or a condition the user can fix. The message is one sentence: problem + fix."""

    exit_code = 2


class RefusedError(UserError):
    """The request is understood but refused for safety (downgrade, busy disk, ...)."""

    exit_code = 3


def cli_entry(func: Callable[..., int]) -> Callable[..., int]:
    """Wrap a console-script main: UserError → one line on stderr and its exit code."""

    @functools.wraps(func)
    def wrapper(*args: object, **kwargs: object) -> int:
        try:
            return func(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            return err.exit_code
        except KeyboardInterrupt:
            print("error: interrupted; nothing further was written", file=sys.stderr)
            return 130

    return wrapper
