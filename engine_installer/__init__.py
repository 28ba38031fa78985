"""Engine installer: boot-media installer and upgrader for Engine."""

PRODUCT = "Engine"
__version__ = "0.1.0"
