"""engine-iso netboot: export an installer ISO for PXE and UEFI HTTP boot (export.py), the DHCP
settings it needs (dhcp.py), and a lab server for it (serve.py)."""
