"""Plain HTTP for the live system (urllib): GET a small file, POST a JSON report, with retries
for a network that is still coming up, and errors worded for a technician."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable

log = logging.getLogger("engine_installer")

TIMEOUT = 15  # seconds per attempt
MAX_SMALL = 4 * 1024 * 1024  # answer files and settings are a few KiB


class FetchError(Exception):
    """A URL could not be read (or posted to). status: the HTTP status, 0 for no answer."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def _describe(err: BaseException) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"the server answered {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        err = err.reason if isinstance(err.reason, BaseException) else err
    if isinstance(err, ConnectionRefusedError):
        return "the server refused the connection (nothing listens there)"
    if isinstance(err, socket.timeout | TimeoutError):
        return "no answer from the server (timed out)"
    if isinstance(err, http.client.RemoteDisconnected | ConnectionResetError):
        return "the server closed the connection without answering"
    if isinstance(err, socket.gaierror):
        return "the server name does not resolve"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror.lower()
    return str(err) or type(err).__name__


def _attempts(
    call: Callable[[], bytes],
    url: str,
    what: str,
    tries: int,
    delay: float,
    sleep: Callable[[float], None],
) -> bytes:
    last: BaseException | None = None
    for attempt in range(1, tries + 1):
        try:
            return call()
        except urllib.error.HTTPError as err:
            # The server answered: a 4xx will not change by asking again, a 5xx may.
            last = err
            if err.code < 500:
                break
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            last = err
        log.warning("%s: attempt %d/%d at %s failed: %s", what, attempt, tries, url,
                    _describe(last))  # fmt: skip
        if attempt < tries:
            sleep(delay * attempt)
    assert last is not None
    status = last.code if isinstance(last, urllib.error.HTTPError) else 0
    raise FetchError(f"{what} at {url}: {_describe(last)}", status)


def fetch_bytes(
    url: str,
    *,
    what: str = "file",
    tries: int = 3,
    delay: float = 2.0,
    limit: int = MAX_SMALL,
    sleep: Callable[[float], None] = time.sleep,
) -> bytes:
    """GET url; FetchError (status set for HTTP answers) when it cannot be read."""

    def call() -> bytes:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:  # noqa: S310 - http only
            data = response.read(limit + 1)
        if len(data) > limit:
            raise FetchError(f"{what} at {url} is larger than {limit // 1024} KiB")
        return data

    return _attempts(call, url, what, tries, delay, sleep)


def post_json(
    url: str,
    data: dict,
    *,
    what: str = "report",
    tries: int = 4,
    delay: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """POST data as JSON; FetchError when no attempt got a 2xx answer."""
    body = json.dumps(data, indent=2).encode()

    def call() -> bytes:
        request = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
            return response.read(MAX_SMALL)

    _attempts(call, url, what, tries, delay, sleep)
