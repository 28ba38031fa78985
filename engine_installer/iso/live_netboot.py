"""The live system's engine-netboot.service (network boots only, see the generator): find out
how this laptop booted (netboot.live), bring its network up, record it for the installer and
say it on every console. Never fails the boot: a problem is recorded and shown on screen 1.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from engine_installer.iso.live_check import Consoles, console_devices
from engine_installer.netboot import live

log = logging.getLogger("engine_installer")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    try:
        boot = live.setup()
    except Exception as err:  # noqa: BLE001 - the installer must still come up; say why
        log.exception("network boot: setup failed")
        boot = live.NetBoot("unknown", problem=f"setting up the network failed ({err})")
    live.save(boot)
    if boot is not None:
        consoles = Consoles(console_devices(Path("/proc/cmdline").read_text()))
        consoles.say(boot.describe())
        if boot.site_args:
            consoles.say(f"Settings from the server: {' '.join(boot.site_args)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
