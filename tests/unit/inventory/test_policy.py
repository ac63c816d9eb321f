"""Rotation policies: durations, cron schedules and the due time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from keyward.core.errors import ConfigError
from keyward.inventory.policy import format_duration, parse_duration, rotation_due

T0 = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)  # a Monday


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90d", 90 * 86400),
        ("90", 90 * 86400),
        ("12h", 43200),
        ("2w", 14 * 86400),
        ("1y", 365 * 86400),
    ],
)
def test_durations_parse_with_days_as_default_unit(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0d", "-3d", "ninety", "3 months"])
def test_bad_durations_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_duration(text)


def test_format_duration_picks_the_largest_whole_unit() -> None:
    assert [format_duration(s) for s in (86400 * 14, 86400 * 90, 3600, 61)] == [
        "2w",
        "90d",
        "1h",
        "61s",
    ]


def test_due_is_max_age_after_last_rotation_else_creation() -> None:
    assert rotation_due(T0, None, 86400, None) == T0 + timedelta(days=1)
    rotated = T0 + timedelta(days=10)
    assert rotation_due(T0, rotated, 86400, None) == rotated + timedelta(days=1)
    assert rotation_due(T0, None, None, None) is None


def test_due_is_the_earlier_of_max_age_and_the_next_scheduled_time() -> None:
    # weekly on Mondays 03:00 UTC: next after Monday 12:00 is the next Monday
    assert rotation_due(T0, None, None, "0 3 * * 1") == datetime(2024, 1, 8, 3, 0, tzinfo=UTC)
    assert rotation_due(T0, None, 3600, "0 3 * * 1") == T0 + timedelta(hours=1)


@pytest.mark.parametrize("expr", ["every day", "0 3 * *", "61 * * * *"])
def test_bad_schedules_are_config_errors(expr: str) -> None:
    with pytest.raises(ConfigError):
        rotation_due(T0, None, None, expr)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("0 3 * * 0", datetime(2024, 1, 7, 3, 0, tzinfo=UTC)),  # Sunday
        ("0 3 * * 7", datetime(2024, 1, 7, 3, 0, tzinfo=UTC)),  # Sunday again
        ("0 3 * * 1-5", datetime(2024, 1, 2, 3, 0, tzinfo=UTC)),  # next weekday
        ("0 3 * * 0-1", datetime(2024, 1, 7, 3, 0, tzinfo=UTC)),
        ("0 3 * * sat", datetime(2024, 1, 6, 3, 0, tzinfo=UTC)),
    ],
)
def test_cron_weekdays_count_from_sunday(expr: str, expected: datetime) -> None:
    assert rotation_due(T0, None, None, expr) == expected
