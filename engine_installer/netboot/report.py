"""engine.report=URL: an unattended install tells the fleet owner how it went.

The report (JSON) names the machine (DMI serial, vendor, model, network card), the medium, and
the result as the runner returned it (InstallResult.to_json(): disk, action, version, slot and
the upgrade report) or the error that stopped it. It is POSTed with retries; when no attempt
gets through and the install succeeded, it is kept on the installed disk's storage partition
next to the upgrade report (engine/reports/), where the fleet owner can collect it later. A
failed or refused install leaves the disk alone: its report stays in the installer's log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine_installer import __version__
from engine_installer.install.results import InstallResult
from engine_installer.netboot import answers, live
from engine_installer.netboot.fetch import FetchError, post_json
from engine_installer.ondisk.layout import REPORTS_DIR

log = logging.getLogger("engine_installer")
DMI = Path("/sys/class/dmi/id")
FORMAT = "engine-install-report-1"


def _dmi(key: str) -> str:
    try:
        return (DMI / key).read_text().strip()
    except OSError:
        return ""


def machine() -> dict[str, str]:
    boot = live.current()
    return {
        "serial": answers.machine_serial(),
        "vendor": _dmi("sys_vendor"),
        "model": _dmi("product_name"),
        "mac": boot.mac if boot else "",
        "address": boot.address if boot else "",
    }


def build(
    result: InstallResult | None, *, medium: str = "", error: str = "", now: datetime | None = None
) -> dict[str, Any]:
    """The report: status installed/failed, the machine, the medium and the result."""
    return {
        "format": FORMAT,
        "status": "failed" if result is None else "installed",
        "time": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        "installer": __version__,
        "medium": medium,
        "machine": machine(),
        "result": result.to_json() if result is not None else None,
        "error": error,
    }


def send(
    url: str,
    report: dict[str, Any],
    keep: Callable[[str, bytes], str] | None = None,
    say: Callable[[str], None] = print,
    **post_options: Any,
) -> bool:
    """POST the report (retried); when that fails, keep(relpath, data) it on the disk."""
    try:
        post_json(url, report, what="the install report", **post_options)
    except FetchError as err:
        log.warning("install report not delivered: %s", err)
        if keep is None:
            say(f"Could not send the install report ({err}); it is in the installer's log.")
            log.info("install report: %s", json.dumps(report))
            return False
        stamp = report["time"].replace(":", "").replace("+0000", "Z")
        name = f"{REPORTS_DIR}/{stamp}-network-report.json"
        where = keep(name, (json.dumps(report, indent=2) + "\n").encode())
        say(f"Could not send the install report ({err}); it is kept on the installed disk "
            f"(storage partition, {where}).")  # fmt: skip
        return False
    say(f"Install report sent to {url}.")
    log.info("install report sent to %s", url)
    return True
