"""Durations as people write them: ``90d``, ``12h``, ``30s``, ``2w``, ``1y`` (the one parser).

Rotation policies (``inventory add --max-age 90d``: a bare number is days) and the
``[rotation]`` settings (``grace_period = "7d"``: a bare number is seconds) both read durations
here; each says what a bare number means and words its own error.
"""

from __future__ import annotations

import re

UNITS: dict[str, int] = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdwy]?)\s*$", re.IGNORECASE)


def duration_seconds(text: str, *, bare_unit: str) -> int | None:
    """Seconds in ``text`` (a whole number, optionally with a unit of :data:`UNITS`; a bare
    number counts in ``bare_unit``), or None when it is not a duration."""
    match = _DURATION.match(text)
    if not match:
        return None
    unit = (match.group(2) or bare_unit).lower()
    return int(match.group(1)) * UNITS[unit]


def format_duration(seconds: int) -> str:
    """The largest whole unit: ``1209600`` -> ``2w``, ``61`` -> ``61s``."""
    for unit in ("y", "w", "d", "h", "m"):
        if seconds % UNITS[unit] == 0:
            return f"{seconds // UNITS[unit]}{unit}"
    return f"{seconds}s"
