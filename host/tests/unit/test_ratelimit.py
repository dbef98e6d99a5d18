"""The sliding-window limiter, run on virtual time: its sleeps advance an injected clock."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from crmhost import ratelimit
from crmhost.models.info import RateLimitPolicy
from crmhost.ratelimit import LimiterRegistry, SlidingWindowLimiter


class VirtualTime:
    """A clock that only moves when the limiter sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 9))
        self.now += seconds


@pytest.fixture(name="clock")
def fx_clock(monkeypatch: pytest.MonkeyPatch) -> VirtualTime:
    clock = VirtualTime()
    # only the limiter module's view of asyncio changes; its Lock stays the real one
    import asyncio

    monkeypatch.setattr(ratelimit, "asyncio", SimpleNamespace(sleep=clock.sleep, Lock=asyncio.Lock))
    return clock


async def _at(clock: VirtualTime, limiter: SlidingWindowLimiter, bucket: str = "default") -> float:
    await limiter.acquire(bucket)
    return clock.now


async def test_exact_rolling_window(clock: VirtualTime) -> None:
    limiter = SlidingWindowLimiter(RateLimitPolicy(requests=3, per_seconds=10), clock=clock)
    times = []
    for step in (0.0, 1.0, 1.0):  # three requests at t=0, 1, 2 pass at once
        clock.now += step
        times.append(await _at(clock, limiter))
    assert times == [0.0, 1.0, 2.0] and clock.sleeps == []
    # the 4th may go only when the request of t=0 leaves the window: at t=10, not earlier
    assert await _at(clock, limiter) == 10.0
    assert clock.sleeps == [8.0]
    # the window now holds t=1, 2, 10: the next slot opens at t=11, then t=12, then t=20
    assert [await _at(clock, limiter) for _ in range(3)] == [11.0, 12.0, 20.0]
    assert limiter.waited_s == pytest.approx(8.0 + 1.0 + 1.0 + 8.0)


async def test_a_request_exactly_one_window_later_passes(clock: VirtualTime) -> None:
    limiter = SlidingWindowLimiter(RateLimitPolicy(requests=1, per_seconds=10), clock=clock)
    await limiter.acquire()
    clock.now = 10.0
    assert await _at(clock, limiter) == 10.0
    assert clock.sleeps == []


async def test_pause_holds_every_bucket_or_one(clock: VirtualTime) -> None:
    policy = RateLimitPolicy(requests=100, per_seconds=10, buckets={"search": (5, 1.0)})
    limiter = SlidingWindowLimiter(policy, clock=clock)
    limiter.pause(5.0, "search")
    assert await _at(clock, limiter) == 0.0  # default is not paused
    assert await _at(clock, limiter, "search") == 5.0
    limiter.pause(3.0)  # everyone, e.g. after a 429 with Retry-After: 3
    assert await _at(clock, limiter) == 8.0
    assert await _at(clock, limiter, "search") == 8.0
    limiter.pause(1.0)
    limiter.pause(0.5)  # a shorter pause never shortens a longer one
    assert await _at(clock, limiter) == 9.0


async def test_named_buckets_count_against_default_unless_exclusive(clock: VirtualTime) -> None:
    policy = RateLimitPolicy(requests=3, per_seconds=10, buckets={"search": (2, 1.0), "batch": (1, 1.0)})
    limiter = SlidingWindowLimiter(policy, clock=clock, exclusive=frozenset({"search"}))
    # search has its own 2/s and does not use up the default budget
    assert [await _at(clock, limiter, "search") for _ in range(3)] == [0.0, 0.0, 1.0]
    # batch counts against both: 1/s of its own and the default 3 per 10 s
    assert [await _at(clock, limiter, "batch") for _ in range(2)] == [1.0, 2.0]
    assert await _at(clock, limiter) == 2.0
    assert await _at(clock, limiter) == 11.0  # default full with t=1, 2, 2 until t=11
    # an unknown bucket name counts against default only
    assert await _at(clock, limiter, "other") == 12.0


async def test_update_from_headers(clock: VirtualTime) -> None:
    limiter = SlidingWindowLimiter(RateLimitPolicy(requests=100, per_seconds=10), clock=clock)
    limiter.update(limit=1, window_s=2.0)
    assert [await _at(clock, limiter) for _ in range(2)] == [0.0, 2.0]
    limiter.update(remaining=0)  # the CRM says the window is spent: wait one window
    assert await _at(clock, limiter) == 4.0
    limiter.update("daily", limit=2, window_s=86400)  # a bucket learnt from headers
    assert [await _at(clock, limiter, "daily") for _ in range(2)] == [6.0, 8.0]
    limiter.update("unknown", remaining=0)  # nothing known about it: ignored
    assert await _at(clock, limiter) == 10.0


async def test_disabled_waits_only_for_pauses(clock: VirtualTime) -> None:
    limiter = SlidingWindowLimiter(RateLimitPolicy(requests=1, per_seconds=10), clock=clock)
    limiter.enabled = False
    for _ in range(5):
        await limiter.acquire()
    assert clock.sleeps == []
    # the windows no longer pace, but a pause the CRM asked for (a 429) still holds
    limiter.pause(3.0)
    assert await _at(clock, limiter) == 3.0


def test_registry_shares_one_limiter_per_account() -> None:
    registry = LimiterRegistry()
    policy = RateLimitPolicy(requests=1, per_seconds=1)
    first = registry.for_account("hubspot", "123", policy)
    assert registry.for_account("hubspot", "123", policy) is first
    assert registry.for_account("hubspot", "456", policy) is not first
    assert registry.for_account("zoho", "123", policy) is not first
    registry.enabled = False
    assert registry.for_account("zoho", "999", policy).enabled is False


async def test_an_answered_request_counts_from_its_answer(clock: VirtualTime) -> None:
    limiter = SlidingWindowLimiter(RateLimitPolicy(requests=2, per_seconds=10), clock=clock)
    first = await limiter.acquire()
    clock.now = 1.0
    await limiter.acquire()
    # the first request's answer took 4 s: the CRM may have counted it as late as t=4
    clock.now = 4.0
    first.answered()
    first.answered()  # a second call changes nothing
    # the window holds t=1 and t=4: the third request waits for t=1 to leave it (t=11), and
    # the fourth for t=4 (t=14), not for t=0 and t=1 as before
    assert await _at(clock, limiter) == 11.0
    assert await _at(clock, limiter) == 14.0


async def test_an_answer_after_the_window_passed_counts_once_more(clock: VirtualTime) -> None:
    limiter = SlidingWindowLimiter(RateLimitPolicy(requests=1, per_seconds=10), clock=clock)
    slow = await limiter.acquire()
    clock.now = 12.0
    # let go at t=0, in flight for longer than the window: it left the count at t=10 and is
    # counted again from its answer, since the CRM may have counted it at any time until then
    slow.answered()
    assert await _at(clock, limiter) == 22.0


async def test_a_disabled_limiters_slot_answers_harmlessly(clock: VirtualTime) -> None:
    limiter = SlidingWindowLimiter(RateLimitPolicy(requests=1, per_seconds=10), clock=clock)
    limiter.enabled = False
    slot = await limiter.acquire()
    slot.answered()
    assert await _at(clock, limiter) == 0.0
