"""The per-provider rate limiter spaces calls evenly (fake clock: no real waiting)."""

from __future__ import annotations

import pytest

from keyward.verify.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def test_calls_beyond_the_rate_wait_their_turn() -> None:
    clock = Clock()
    limiter = RateLimiter(4.0, clock=clock.time, sleep=clock.sleep)
    for _ in range(3):
        limiter.acquire()
    assert clock.slept == [0.25, 0.25]


def test_no_wait_when_calls_are_already_spaced() -> None:
    clock = Clock()
    limiter = RateLimiter(2.0, clock=clock.time, sleep=clock.sleep)
    limiter.acquire()
    clock.now += 1.0
    limiter.acquire()
    assert clock.slept == []


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0)
