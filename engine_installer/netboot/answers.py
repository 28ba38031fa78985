"""engine.autoinstall=http://... : each laptop of a fleet fetches its own answer file.

The URL may hold {serial} (the machine's DMI serial number) and {mac} (the boot network card,
52-54-00-12-34-56). When the laptop's own file is not on the server (404), or its serial is
unknown, the same URL with `default` in place of each placeholder is tried: answers/default.toml
serves every laptop without a file of its own. A URL without placeholders names one file for all.
Anything else that goes wrong stops the unattended install: it never falls back to defaults.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

from engine_installer.base.errors import UserError
from engine_installer.netboot.fetch import FetchError, fetch_bytes

PLACEHOLDERS = ("{serial}", "{mac}")
DEFAULT = "default"
DMI_SERIAL = Path("/sys/class/dmi/id/product_serial")
# What firmware writes when nobody set a serial number: as good as none.
NO_SERIAL = re.compile(r"^(|0+|none|n/a|default string|not specified|system serial number|"
                       r"to be filled by o\.e\.m\.?)$", re.IGNORECASE)  # fmt: skip


def machine_serial(path: Path = DMI_SERIAL) -> str:
    try:
        serial = path.read_text().strip()
    except OSError:
        return ""
    return "" if NO_SERIAL.match(serial) else serial


def mac_text(mac: str) -> str:
    return mac.lower().replace(":", "-")


def candidate_urls(template: str, serial: str, mac: str) -> list[str]:
    """The laptop's own URL (when its placeholders are known), then the default one."""
    if not any(p in template for p in PLACEHOLDERS):
        return [template]
    values = {"{serial}": quote(serial, safe=""), "{mac}": mac_text(mac)}
    urls = []
    if all(values[p] for p in PLACEHOLDERS if p in template):
        own = template
        for placeholder, value in values.items():
            own = own.replace(placeholder, value)
        urls.append(own)
    default = template
    for placeholder in PLACEHOLDERS:
        default = default.replace(placeholder, DEFAULT)
    urls.append(default)
    return urls


def fetch_answers(template: str, serial: str, mac: str, **kwargs) -> tuple[bytes, str]:
    """(answer file bytes, the URL they came from); UserError naming every URL tried."""
    tried = []
    for url in candidate_urls(template, serial, mac):
        try:
            return fetch_bytes(url, what="the answer file", **kwargs), url
        except FetchError as err:
            tried.append(str(err))
            if err.status != 404:
                break  # the server is down or broken: asking for the default will not help
    who = f"serial {serial or 'unknown'}, MAC {mac_text(mac) or 'unknown'}"
    raise UserError(
        f"no answer file for this laptop ({who}): {'; '.join(tried)}; put it on the server "
        "(or fix the network), then restart the laptop"
    )
