"""User-facing errors: one line naming the problem and the fix, never a traceback."""

from __future__ import annotations

import functools
import os
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
        except BrokenPipeError:  # stdout's reader went away (`| head`) after the work was done
            detach_stdout()
            return 0

    return wrapper


def detach_stdout() -> None:
    """stdout's reader has gone (`| head -3`): point stdout at /dev/null, so that no later
    print fails and the work goes on without its output (Python ignores SIGPIPE, so a closed
    pipe shows up as BrokenPipeError on the next write)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)
