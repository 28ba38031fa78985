"""A small QEMU harness for booting Engine disks and installer media (see harness.py)."""
