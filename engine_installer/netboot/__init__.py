"""Network boot: the installer ISO served to a fleet over PXE and UEFI HTTP boot.

Build side (imaging staff, `engine-iso netboot`): export.py makes the directory a TFTP and an
HTTP server serve as they are, dhcp.py words the DHCP settings, serve.py is the lab server.
Live side (the installer on a laptop that booted from the network): live.py finds out how the
laptop booted and brings up its network, fetch.py reads URLs with clear errors, report.py sends
the result of an unattended install back to the fleet owner.
"""
