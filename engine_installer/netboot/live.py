"""How this laptop booted, seen from the live system: from a DVD or USB stick, or the network.

    pxe        the export's PXE menu passes engine.netboot=<export URL>; live-boot's initramfs
               configured the network card (ipconfig: /run/net-<card>.conf) and fetched the ISO
               over HTTP (fetch=) into RAM.
    uefi-http  the firmware loaded the whole ISO into a RAM disk (/dev/pmem*) and the ISO's own
               menu booted it: nothing on the kernel command line says so and no card is
               configured. setup() asks DHCP the way the firmware did (vendor class HTTPClient),
               which gives an address and the ISO's URL; the export's netboot-args.txt next to the
               ISO hands over the site's engine.* arguments (what the PXE menu puts on the
               command line).

setup() runs once per boot (engine-netboot.service, before the installer and the medium check)
and writes STATE_FILE; current() reads it; boot_arguments() is the command line every reader of
engine.* arguments uses.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urljoin

from engine_installer.netboot.names import (
    ARGS_NAME,
    HTTP_CLIENT_CLASS,
    ISO_NAME,
    NETBOOT_ARG,
    SITE_ARGS,
    STATE_FILE,
    cmdline_value,
)

log = logging.getLogger("engine_installer")

CMDLINE = Path("/proc/cmdline")
MOUNTINFO = Path("/proc/self/mountinfo")
SYS_NET = Path("/sys/class/net")
RUN = Path("/run")
MEDIUM = "/run/live/medium"
IPCONFIG = "/usr/lib/klibc/bin/ipconfig"
# The vendor class a UEFI HTTP boot client sends (architecture 16: x64 HTTP, UNDI 3.1).
HTTP_CLIENT_ID = f"{HTTP_CLIENT_CLASS}:Arch:00016:UNDI:003001"
DHCP_SECONDS = 20
KINDS = {"pxe": "PXE", "uefi-http": "UEFI HTTP boot"}


@dataclass
class NetBoot:
    kind: str  # "pxe" | "uefi-http"
    server: str = ""  # the export's base URL (ends in /), "" when unknown
    boot_url: str = ""  # the URL the ISO came from
    interface: str = ""
    mac: str = ""
    address: str = ""
    site_args: list[str] = field(default_factory=list)  # engine.* taken over from the export
    problem: str = ""  # why the network is not usable, when it is not

    def describe(self) -> str:
        """One line for screen 1 and the log."""
        line = f"Booted from the network ({KINDS.get(self.kind, self.kind)})"
        if self.server:
            line += f" from {self.server}"
        if self.problem:
            return f"{line}; {self.problem}"
        if self.interface:
            line += f"; {self.interface} {self.mac} {self.address}".rstrip()
        return line


# -- reading the machine --------------------------------------------------------------------


def medium_source(mountinfo: str) -> str:
    """The device the live medium is mounted from ('' when it is not mounted)."""
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] == MEDIUM and " - " in line:
            return line.split(" - ", 1)[1].split()[1]
    return ""


def boot_kind(cmdline: str, mountinfo: str) -> str | None:
    """'pxe', 'uefi-http' or None (a DVD or USB stick)."""
    if cmdline_value(cmdline, NETBOOT_ARG):
        return "pxe"
    if re.fullmatch(r"/dev/pmem\d+(p\d+)?", medium_source(mountinfo)):
        return "uefi-http"
    return None


def parse_net_conf(text: str) -> dict[str, str]:
    """klibc ipconfig's /run/net-<card>.conf (KEY='value' lines)."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and re.fullmatch(r"[A-Za-z0-9_]+", key):
            try:
                parts = shlex.split(value)
            except ValueError:
                continue
            values[key] = parts[0] if parts else ""
    return values


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _configured(run: Path = RUN) -> dict[str, str] | None:
    """The lease of a card the initramfs (or an earlier setup) configured, if any."""
    for conf in sorted(run.glob("net-*.conf")):
        values = parse_net_conf(_read(conf))
        if values.get("IPV4ADDR", "0.0.0.0") not in ("", "0.0.0.0"):
            return values
    return None


def _ethernet_cards(sys_net: Path = SYS_NET) -> list[str]:
    cards = []
    for card in sorted(sys_net.iterdir()):
        # Physical Ethernet only: type 1, backed by a device, not a bridge or a virtual link.
        if _read(card / "type") == "1" and (card / "device").exists():
            cards.append(card.name)
    return cards


def firmware_boot_entry(efibootmgr: str | None = None) -> tuple[str, str]:
    """(MAC, URI) of the boot option the firmware booted (efibootmgr -v: BootCurrent's MAC(...)
    and Uri(...) nodes); the URI is set when the firmware's HTTP boot URL was typed in its setup
    rather than given by DHCP. ("", "") when unknown."""
    if efibootmgr is None:
        try:
            efibootmgr = subprocess.run(["efibootmgr", "-v"], capture_output=True, text=True,
                                        timeout=20, check=False).stdout  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            return "", ""
    current = re.search(r"^BootCurrent:\s*([0-9A-Fa-f]{4})", efibootmgr, re.MULTILINE)
    entry = (
        re.search(rf"^Boot{current.group(1)}\*?\s.*$", efibootmgr, re.MULTILINE)
        if current
        else None
    )
    if entry is None:
        return "", ""
    mac = re.search(r"MAC\(([0-9A-Fa-f]{12})", entry.group(0))
    uri = re.search(r"Uri\((http://[^)\s]+)\)", entry.group(0))
    mac_text = ":".join(mac.group(1)[i : i + 2] for i in range(0, 12, 2)).lower() if mac else ""
    return mac_text, uri.group(1) if uri else ""


def dhcp(cards: list[str]) -> dict[str, str] | None:
    """Ask DHCP on each card in turn, as a UEFI HTTP boot client; the first lease wins."""
    # ipconfig brings the card up itself and keeps asking until its timeout (the link may
    # still be coming up).
    for card in cards:
        cmd = [IPCONFIG, "-t", str(DHCP_SECONDS), "-c", "dhcp", "-i", HTTP_CLIENT_ID, "-d", card]
        log.info("network boot: %s", " ".join(cmd))
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True,
                                  timeout=DHCP_SECONDS + 15, check=False)  # fmt: skip
        except (OSError, subprocess.SubprocessError) as err:
            log.warning("network boot: ipconfig on %s failed: %s", card, err)
            continue
        log.info("network boot: ipconfig %s: %s", card, proc.stdout.strip().replace("\n", "; "))
        lease = parse_net_conf(_read(RUN / f"net-{card}.conf"))
        if lease.get("IPV4ADDR", "0.0.0.0") not in ("", "0.0.0.0"):
            return lease
    return None


def fetch_site_args(server: str) -> list[str]:
    """engine.* arguments from the export's netboot-args.txt (only SITE_ARGS are taken)."""
    # Imported here: every installer start reads this module, and the HTTP client's imports
    # cost seconds under emulation; only a UEFI HTTP boot fetches.
    from engine_installer.netboot.fetch import FetchError, fetch_bytes

    try:
        text = fetch_bytes(urljoin(server, ARGS_NAME), what="the export's settings").decode()
    except FetchError as err:
        if err.status == 404:
            return []  # an export without site settings
        raise
    args = []
    for arg in shlex.split(text, comments=True):
        if arg.split("=", 1)[0] in SITE_ARGS:
            args.append(arg)
        else:
            log.warning("network boot: %s ignores %r (only %s)", ARGS_NAME, arg, SITE_ARGS)
    return args


def setup(cmdline: str | None = None, mountinfo: str | None = None) -> NetBoot | None:
    """Find out how this laptop booted; on a network boot make sure the network is up."""
    cmdline = CMDLINE.read_text() if cmdline is None else cmdline
    mountinfo = _read(MOUNTINFO) if mountinfo is None else mountinfo
    kind = boot_kind(cmdline, mountinfo)
    if kind is None:
        return None
    boot = NetBoot(kind)
    lease = _configured()
    firmware_uri = ""
    if kind == "pxe":
        boot.server = cmdline_value(cmdline, NETBOOT_ARG) or ""
        boot.boot_url = urljoin(boot.server, ISO_NAME) if boot.server else ""
    elif lease is None:
        mac, firmware_uri = firmware_boot_entry()
        cards = _ethernet_cards()
        by_mac = [c for c in cards if _read(SYS_NET / c / "address").lower() == mac]
        lease = dhcp(by_mac or cards)
    if lease is None:
        boot.problem = "no network address (DHCP did not answer): check the cable and DHCP"
        return boot
    boot.interface = lease.get("DEVICE", "")
    boot.mac = _read(SYS_NET / boot.interface / "address") if boot.interface else ""
    boot.address = lease.get("IPV4ADDR", "")
    if kind == "uefi-http":
        filename = lease.get("filename", "")
        if not filename.startswith("http://"):
            filename = firmware_uri  # a URL typed into the firmware's setup
        if filename.startswith("http://"):
            boot.boot_url = filename
            boot.server = filename.rsplit("/", 1)[0] + "/"
        else:
            boot.problem = ("neither DHCP nor the firmware names an http:// boot file, so the "
                            "server is unknown: see dhcp.txt in the export")  # fmt: skip
            return boot
        try:
            boot.site_args = fetch_site_args(boot.server)
        except Exception as err:  # noqa: BLE001 - reported on screen 1, then the UI runs
            boot.problem = f"cannot read {ARGS_NAME} from {boot.server}: {err}"
    return boot


# -- the state file ---------------------------------------------------------------------------


def save(boot: NetBoot | None, path: Path = Path(STATE_FILE)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(asdict(boot) if boot else None) + "\n")
    partial.replace(path)


def current(path: Path | None = None) -> NetBoot | None:
    """What setup() found on this boot; None on a DVD/USB boot or outside the live system."""
    path = path or Path(os.environ.get("ENGINE_NETBOOT_STATE", STATE_FILE))
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    try:
        return NetBoot(**data)
    except TypeError:
        return None


def boot_arguments(cmdline: str | None = None, boot: NetBoot | None = None) -> str:
    """The kernel command line plus what a UEFI HTTP boot took over from the export; the
    command line wins (it comes last)."""
    cmdline = CMDLINE.read_text() if cmdline is None else cmdline
    boot = current() if boot is None else boot
    site = " ".join(shlex.quote(a) for a in boot.site_args) if boot else ""
    return f"{site} {cmdline.strip()}".strip()
