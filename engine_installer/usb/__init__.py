"""engine-usb: write the Engine ISO to USB sticks, safely, fast and verified."""
