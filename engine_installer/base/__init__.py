"""Base layer: errors, progress events, versions and the run log. Imports nothing above it."""
