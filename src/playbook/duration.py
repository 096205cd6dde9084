"""Human durations (`90s`, `15m`, `2h`, `3d`, `1h30m`): parsing and printing.

A bare number is refused on purpose: `at: 10` could mean seconds or minutes, and YAML 1.1 would
read `1:30` as 90. Playbooks are read in a crisis by tired people, so the unit is always written.
"""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d{1,6})([dhms])")
_WHOLE = re.compile(r"(?:\d{1,6}[dhms])+")
HINT = "write a number with a unit: 90s, 15m, 2h, 3d or 1h30m"


def parse_duration(text: str) -> timedelta:
    """Parse `1h30m` into a timedelta; raise ValueError with a message meant for a person."""
    compact = text.strip().replace(" ", "")
    if not _WHOLE.fullmatch(compact):
        raise ValueError(f"{text!r} is not a duration")
    seen: list[str] = []
    seconds = 0
    for number, unit in _PART.findall(compact):
        if unit in seen:
            raise ValueError(f"{text!r} names the unit {unit!r} twice")
        if seen and list(_UNITS).index(unit) < list(_UNITS).index(seen[-1]):
            raise ValueError(f"{text!r} has its units out of order (largest first)")
        seen.append(unit)
        seconds += int(number) * _UNITS[unit]
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """Print a timedelta the way a playbook writes it: `1h30m`, `0m`, `-15m`."""
    total = int(value.total_seconds())
    sign = "-" if total < 0 else ""
    total = abs(total)
    if total == 0:
        return "0m"
    parts = []
    for unit, size in _UNITS.items():
        if total >= size:
            parts.append(f"{total // size}{unit}")
            total %= size
    return sign + "".join(parts)
