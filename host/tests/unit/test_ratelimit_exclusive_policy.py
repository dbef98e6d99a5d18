from __future__ import annotations

from crmhost.models import RateLimitPolicy
from crmhost.ratelimit import LimiterRegistry


async def test_policy_exclusive_buckets_reach_registry_limiters() -> None:
    policy = RateLimitPolicy(
        requests=1, per_seconds=60, buckets={"search": (3, 60.0)}, exclusive_buckets=["search"]
    )
    limiter = LimiterRegistry().for_account("hubspot", "1", policy)
    now = [0.0]
    limiter._clock = lambda: now[0]
    await limiter.acquire()
    for _ in range(3):  # search has its own room although the burst window is full
        await limiter.acquire("search")
    assert limiter.waited_s == 0.0
    # and a search request did not count towards the burst window
    policy_shared = RateLimitPolicy(requests=1, per_seconds=60, buckets={"search": (3, 60.0)})
    shared = LimiterRegistry().for_account("hubspot", "2", policy_shared)
    shared._clock = lambda: now[0]
    await shared.acquire("search")
    assert shared._delay("default", now[0]) == 60.0
