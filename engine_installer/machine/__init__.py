"""The machine: one probe that yields a snapshot (disks, firmware, CPU, keyboards) and
detection of Engine installs on its disks. Read-only."""
