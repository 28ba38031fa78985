"""engine-iso netboot --serve: one machine serves an export over TFTP and HTTP, for a lab.

HTTP is Python's http.server (threaded, plain files, no directory listings); it also accepts the
install reports that unattended installs POST (engine.report=http://<this>/reports/) and keeps
each one as a JSON file under DIR/reports/. TFTP is tftpy, read-only. There is no DHCP server
here: the site's DHCP server points the laptops at this machine (see dhcp.txt in the export).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from engine_installer.base.errors import UserError
from engine_installer.netboot.names import REPORTS_DIR

MAX_REPORT = 1024 * 1024  # a report is a few KiB of JSON


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Files from the export; POST /reports/... stores a report."""

    say: Callable[[str], None] = print
    reports: Path

    def list_directory(self, path):  # type: ignore[override]
        self.send_error(403, "no directory listings")
        return None

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        if not path.startswith(f"/{REPORTS_DIR}/") and path != f"/{REPORTS_DIR}":
            self.send_error(404, f"reports go to /{REPORTS_DIR}/")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > MAX_REPORT:
            self.send_error(413 if length > 0 else 411, "a report is JSON up to 1 MiB")
            return
        body = self.rfile.read(length)
        try:
            report = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            self.send_error(400, "the report is not JSON")
            return
        machine = report.get("machine", {}) if isinstance(report, dict) else {}
        serial = str(machine.get("serial", "")) if isinstance(machine, dict) else ""
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", serial or self.client_address[0])[:64]
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        self.reports.mkdir(parents=True, exist_ok=True)
        target = self.reports / f"{name}-{stamp}.json"
        partial = target.with_name(f".{target.name}.partial")
        partial.write_bytes(body)
        partial.replace(target)
        self.say(f"report from {self.client_address[0]}: {target.name}")
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's signature
        self.say(f"http {self.client_address[0]} {format % args}")


class LabServer:
    """HTTP (and TFTP unless tftp_port is None) over one export directory, in threads."""

    def __init__(
        self,
        directory: Path,
        *,
        bind: str = "0.0.0.0",
        port: int = 8080,
        tftp_port: int | None = 69,
        say: Callable[[str], None] = print,
    ) -> None:
        self.directory = Path(directory).resolve()
        if not self.directory.is_dir():
            raise UserError(f"{directory} is not a directory: give the export directory")
        self.bind, self.port, self.tftp_port, self.say = bind, port, tftp_port, say
        self._http: http.server.ThreadingHTTPServer | None = None
        self._tftp = None
        self._threads: list[threading.Thread] = []

    def start(self) -> LabServer:
        handler = type(
            "Handler",
            (_Handler,),
            {"say": staticmethod(self.say), "reports": self.directory / REPORTS_DIR},
        )

        def make_handler(*args, **kwargs):
            return handler(*args, directory=str(self.directory), **kwargs)

        try:
            self._http = http.server.ThreadingHTTPServer((self.bind, self.port), make_handler)
        except OSError as err:
            raise UserError(
                f"cannot serve HTTP on {self.bind}:{self.port} ({err.strerror}): choose another "
                "--port, or stop what uses it"
            ) from None
        self._http.daemon_threads = True
        self.port = self._http.server_address[1]
        self._thread(self._http.serve_forever, "http")
        if self.tftp_port is not None:
            self._start_tftp()
        return self

    def _start_tftp(self) -> None:
        import tftpy

        logging.getLogger("tftpy").setLevel(logging.WARNING)
        # upload_open returning None refuses every upload: the lab server is read-only.
        server = tftpy.TftpServer(str(self.directory), upload_open=lambda *_args: None)
        self._tftp = server
        failure: list[OSError] = []

        def listen() -> None:
            try:
                server.listen(self.bind, self.tftp_port)
            except OSError as err:
                failure.append(err)
                server.is_running.set()

        self._thread(listen, "tftp")
        server.is_running.wait(10)
        if failure:
            self.stop()
            raise UserError(
                f"cannot serve TFTP on {self.bind}:{self.tftp_port} ({failure[0].strerror}): "
                "port 69 needs root; or choose --tftp-port, or stop the other TFTP server"
            )
        self.tftp_port = server.listenport

    def _thread(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=f"lab-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._tftp is not None:
            with contextlib.suppress(Exception):
                self._tftp.stop(now=True)
            self._tftp = None

    def __enter__(self) -> LabServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def serving(directory: Path, **kwargs) -> Iterator[LabServer]:
    server = LabServer(directory, **kwargs).start()
    try:
        yield server
    finally:
        server.stop()


def serve_forever(directory: Path, **kwargs) -> int:
    """Run until Ctrl-C."""
    say = kwargs.get("say", print)
    with serving(directory, **kwargs) as server:
        tftp = f", TFTP on port {server.tftp_port}" if server.tftp_port is not None else ""
        say(f"serving {server.directory}: HTTP on {server.bind}:{server.port}{tftp}; "
            "Ctrl-C stops")  # fmt: skip
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            say("stopped")
    return 0
