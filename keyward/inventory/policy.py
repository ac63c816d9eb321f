"""Rotation policies: a maximum age ("90d") and/or a cron schedule ("0 3 * * 1").

A secret is due when its age (since the last rotation, else since it was created) reaches the
maximum age, or when the schedule has fired since the last rotation, whichever comes first.
The due time is stored (``secrets.rotation_due_at``) so that "overdue" is an indexed range.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from keyward.core.durations import duration_seconds, format_duration
from keyward.core.errors import ConfigError

__all__ = ["format_duration", "next_fire", "parse_duration", "rotation_due", "validate_schedule"]


def parse_duration(text: str) -> int:
    """``90d`` / ``12h`` / ``2w`` / ``1y`` / a number of days -> seconds."""
    seconds = duration_seconds(text, bare_unit="d")
    if not seconds:
        raise ConfigError(
            f"{text!r} is not a duration",
            hint="Use a positive number with a unit: 90d, 12h, 2w, 1y",
        )
    return seconds


def validate_schedule(expr: str) -> str:
    """Check a five-field cron expression (minute hour day month weekday)."""
    _trigger(expr)
    return " ".join(expr.split())


def _trigger(expr: str) -> object:
    from apscheduler.triggers.cron import CronTrigger

    if len(expr.split()) != 5:
        raise ConfigError(
            f"{expr!r} is not a five-field cron schedule",
            hint='Use "minute hour day month weekday", e.g. "0 3 * * 1" for Mondays 03:00 UTC',
        )
    minute, hour, day, month, weekday = expr.split()
    try:
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=_weekday_names(weekday),
            timezone=UTC,
        )
    except ValueError as exc:
        raise ConfigError(f"{expr!r} is not a valid cron schedule ({exc})") from None


_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _weekday_names(field: str) -> str:
    """Cron counts weekdays from Sunday = 0 (or 7); APScheduler 3 from Monday = 0. Use names."""

    def name(num: str) -> str:
        n = int(num)
        if not 0 <= n <= 7:
            raise ConfigError(f"{num} is not a weekday (0-7)")
        return _DAYS[n]

    items: list[str] = []
    for item in field.split(","):
        base, slash, step = item.partition("/")
        if base.isdigit():
            items.append(name(base) + slash + step)
        elif re.fullmatch(r"\d+-\d+", base):
            lo, hi = (int(x) for x in base.split("-"))
            if lo == 0:  # Sunday-first ranges wrap in APScheduler's Monday-first week
                items.append("sun")
                lo = 1
            if hi == 7:
                items.append("sun")
                hi = 6
            if lo <= hi:
                items.append(f"{_DAYS[lo]}-{_DAYS[hi]}" + slash + step)
        else:
            items.append(item)
    return ",".join(items)


def next_fire(expr: str, after: datetime) -> datetime | None:
    trigger = _trigger(expr)
    fire = trigger.get_next_fire_time(None, after + timedelta(seconds=1))  # type: ignore[attr-defined]
    return fire.astimezone(UTC) if fire is not None else None


def rotation_due(
    created_at: datetime,
    last_rotated_at: datetime | None,
    max_age_seconds: int | None,
    schedule: str | None,
) -> datetime | None:
    """When the policy next requires a rotation (None: no policy)."""
    base = last_rotated_at or created_at
    candidates: list[datetime] = []
    if max_age_seconds:
        candidates.append(base + timedelta(seconds=max_age_seconds))
    if schedule:
        fire = next_fire(schedule, base)
        if fire is not None:
            candidates.append(fire)
    return min(candidates) if candidates else None
