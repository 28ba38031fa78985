"""engine-iso: build and check the Engine installer ISO, and sample Engine payloads."""
