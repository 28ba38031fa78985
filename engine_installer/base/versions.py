"""Engine version strings ("4.5", "5.0", "5.0.1") compared numerically."""

from __future__ import annotations

from engine_installer.base.errors import UserError


def parse_version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.strip().split("."))
    except ValueError:
        raise UserError(f"'{text}' is not an Engine version: use numbers like 5.0") from None


def compare_versions(a: str, b: str) -> int:
    """-1 if a < b, 0 if equal, 1 if a > b (missing trailing parts count as 0)."""
    va, vb = parse_version(a), parse_version(b)
    width = max(len(va), len(vb))
    va += (0,) * (width - len(va))
    vb += (0,) * (width - len(vb))
    return (va > vb) - (va < vb)
