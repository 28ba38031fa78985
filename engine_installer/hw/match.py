"""Pick the hardware profile whose match patterns fit a machine snapshot."""

from __future__ import annotations

import fnmatch
import re

from engine_installer.hw.schema import REGEX_PREFIX, Profile
from engine_installer.machine.snapshot import MachineSnapshot


def pattern_matches(pattern: str, value: str) -> bool:
    """A glob (case-sensitive, as vendors spell DMI strings exactly) or a full-match regex."""
    if pattern.startswith(REGEX_PREFIX):
        return re.fullmatch(pattern[len(REGEX_PREFIX) :], value) is not None
    return fnmatch.fnmatchcase(value, pattern)


def machine_facts(snapshot: MachineSnapshot) -> dict[str, str]:
    # DMI strings often carry trailing blanks (Lenovo pads product_version); compare trimmed.
    facts = {k: v.strip() for k, v in snapshot.dmi.items()}
    facts["cpu_model"] = snapshot.cpu_model.strip()
    facts["firmware"] = snapshot.firmware
    return facts


def profile_matches(profile: Profile, snapshot: MachineSnapshot) -> bool:
    facts = machine_facts(snapshot)
    return all(
        any(pattern_matches(p, facts.get(key, "")) for p in patterns)
        for key, patterns in profile.match.items()
    )


def match_profile(snapshot: MachineSnapshot, profiles: list[Profile]) -> Profile | None:
    """The matching profile with the most match keys (the most specific), or None."""
    hits = [p for p in profiles if profile_matches(p, snapshot)]
    if not hits:
        return None
    return max(hits, key=lambda p: (len(p.match), p.id))
