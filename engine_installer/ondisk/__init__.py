"""On-disk formats and read-only access: the layout, GPT, ESP files, boot environment, install
marker, Engine payload, kernel command line and VM inventory. Nothing here writes a disk."""
