"""Network boot, the live system's side: how this laptop booted and its network (live.py),
plain HTTP with clear errors (fetch.py), answer files per laptop (answers.py), and the report
an unattended install sends back (report.py). The build side (the export, DHCP settings, the lab
server) is engine_installer/iso/net/; names.py holds what both sides share.
"""
