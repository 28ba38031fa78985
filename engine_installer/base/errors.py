"""User-facing errors: one line naming the problem and the fix, never a traceback."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable

INTERNAL = "internal error"


class UserError(Exception):
    """A mistake or a condition the user can fix. The message is one sentence: problem + fix."""

    exit_code = 2


class RefusedError(UserError):
    """The request is understood but refused for safety (downgrade, busy disk, ...)."""

    exit_code = 3


def cli_entry(func: Callable[..., int]) -> Callable[..., int]:
    """Wrap a console-script main: UserError → one line on stderr and its exit code; a closed
    output pipe ends quietly; anything unexpected is one line too, with the traceback in the log."""

    @functools.wraps(func)
    def wrapper(*args: object, **kwargs: object) -> int:
        from engine_installer.base.i18n import _, init_language

        init_language()  # --help, errors and output in the chosen language
        try:
            return func(*args, **kwargs)
        except UserError as err:
            print(_("error: {message}").format(message=err), file=sys.stderr)
            return err.exit_code
        except KeyboardInterrupt:
            print(_("error: interrupted before any disk was written"), file=sys.stderr)
            return 130
        except BrokenPipeError:  # stdout's reader went away (`| head`) after the work was done
            detach_stdout()
            return 0
        except Exception as err:  # noqa: BLE001 - a bug: one line for the user, details in the log
            log = logging.getLogger("engine_installer")
            if log.handlers:  # the run log; never Python's last-resort handler on stderr
                log.exception("unexpected failure")
            print(
                _(
                    "error: internal error ({error}); nothing further was done: please report "
                    "it with the installer log"
                ).format(error=f"{err.__class__.__name__}: {err}"),
                file=sys.stderr,
            )
            return 1

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
