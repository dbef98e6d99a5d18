"""Per-account request pacing that plugins call before each CRM request.

Written here rather than taken from a library: we need exact rolling windows (HubSpot counts
"100 per rolling 10 s", so a token bucket's refill lets request 101 through too early), several
named buckets per account, and a shared pause that a 429's ``Retry-After`` sets for everyone
using the account. aiolimiter and friends give only a leaky bucket.

A request counts from when it was let go until its answer came back (:meth:`Slot.answered`),
then from that moment: the CRM counted it somewhere in between, so a window that counts it
from the answer holds at least what the CRM's window holds, however long the request waited
on our side (a busy event loop, a full connection pool) or the CRM's. Counting only from when
it was let go, requests held up after it arrive closer together than they went and meet 429s.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from crmhost.models.info import RateLimitPolicy

__all__ = ["LimiterRegistry", "RateLimiter", "SlidingWindowLimiter", "Slot"]


class Slot:
    """One request's place in the windows; :meth:`answered` once its answer (or error) came back."""

    __slots__ = ("_at", "_clock", "_windows")

    def __init__(self, windows: list[_Window], at: float, clock: Callable[[], float]) -> None:
        self._windows = windows
        self._at = at
        self._clock = clock

    @property
    def pending(self) -> bool:
        """Whether the slot still counts from when its request was let go (not answered yet)."""
        return bool(self._windows)

    def answered(self) -> None:
        """Count the request from now on: the CRM counted it before it answered.

        Calling it again, or on a slot of a disabled limiter, does nothing.
        """
        if not self._windows:
            return
        now = self._clock()
        for window in self._windows:
            # a stamp that aged out already is counted again from now: that only errs on the safe side
            with contextlib.suppress(ValueError):
                window.sent.remove(self._at)
            # every stamp in the window is in the past, so appending keeps it in order
            window.sent.append(now)
        self._windows = []


class RateLimiter(Protocol):
    """What plugins see as ``ctx.limiter``."""

    async def acquire(self, bucket: str = "default") -> Slot:
        """Wait until one more request in ``bucket`` stays within the limits.

        Call :meth:`Slot.answered` on the result when the request's answer (or its failure)
        came back; a slot never answered counts from when it was let go.
        """

    def update(
        self,
        bucket: str = "default",
        *,
        limit: int | None = None,
        window_s: float | None = None,
        remaining: int | None = None,
    ) -> None:
        """Refine a bucket from the CRM's rate-limit headers."""

    def pause(self, seconds: float, bucket: str | None = None) -> None:
        """Hold every request (or one bucket's) for ``seconds``, e.g. after a 429."""

    @property
    def waited_s(self) -> float:
        """Seconds callers spent waiting so far."""


class _Window:
    __slots__ = ("limit", "sent", "window_s")

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self.sent: deque[float] = deque()


class SlidingWindowLimiter:
    """Exact rolling-window limits, one per named bucket, plus pauses.

    Every request counts against ``default`` and, when named, against its own bucket too
    (HubSpot's search calls have their own 5/s limit and do not count towards the burst one;
    a plugin models that by declaring the bucket with ``exclusive``).

    Args:
        policy: the CRM's published limits.
        clock: a monotonic clock in seconds (injectable for tests).
        exclusive: buckets whose requests do not count towards ``default``, in addition to
            the policy's ``exclusive_buckets``.
    """

    def __init__(
        self,
        policy: RateLimitPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        exclusive: frozenset[str] = frozenset(),
    ) -> None:
        self._clock = clock
        self._windows: dict[str, _Window] = {"default": _Window(policy.requests, policy.per_seconds)}
        for name, (limit, window_s) in policy.buckets.items():
            self._windows[name] = _Window(limit, window_s)
        self._exclusive = exclusive | frozenset(policy.exclusive_buckets)
        self._paused_until: dict[str | None, float] = {}
        self._lock = asyncio.Lock()
        self._waited = 0.0
        self.enabled = True

    @property
    def waited_s(self) -> float:
        """Seconds callers spent waiting so far."""
        return self._waited

    def _buckets_for(self, bucket: str) -> list[_Window]:
        windows = []
        if bucket == "default" or bucket not in self._exclusive:
            windows.append(self._windows["default"])
        if bucket != "default" and bucket in self._windows:
            windows.append(self._windows[bucket])
        return windows

    def _paused(self, bucket: str) -> float:
        """When a pause the CRM asked for (429, Retry-After) ends for ``bucket``."""
        return max(self._paused_until.get(None, 0.0), self._paused_until.get(bucket, 0.0))

    def _delay(self, bucket: str, now: float) -> float:
        delay = self._paused(bucket) - now
        for window in self._buckets_for(bucket):
            while window.sent and window.sent[0] <= now - window.window_s:
                window.sent.popleft()
            if len(window.sent) >= window.limit:
                # the oldest request in the window must age out before another may go
                delay = max(delay, window.sent[len(window.sent) - window.limit] + window.window_s - now)
        return max(0.0, delay)

    async def acquire(self, bucket: str = "default") -> Slot:
        """Wait until one more request in ``bucket`` stays within the limits, then count it."""
        if not self.enabled:
            # no pacing by the windows, but a pause the CRM asked for (429, Retry-After) holds
            delay = self._paused(bucket) - self._clock()
            if delay > 0:
                self._waited += delay
                await asyncio.sleep(delay)
            return Slot([], 0.0, self._clock)
        async with self._lock:
            while True:
                now = self._clock()
                delay = self._delay(bucket, now)
                if delay <= 0:
                    windows = self._buckets_for(bucket)
                    for window in windows:
                        window.sent.append(now)
                    return Slot(windows, now, self._clock)
                self._waited += delay
                await asyncio.sleep(delay)

    def update(
        self,
        bucket: str = "default",
        *,
        limit: int | None = None,
        window_s: float | None = None,
        remaining: int | None = None,
    ) -> None:
        """Refine a bucket from response headers (limit, window and what the CRM says is left)."""
        window = self._windows.get(bucket)
        if window is None:
            if limit is None or window_s is None:
                return
            window = self._windows[bucket] = _Window(limit, window_s)
        if limit is not None and limit > 0:
            window.limit = limit
        if window_s is not None and window_s > 0:
            window.window_s = window_s
        if remaining is not None and remaining <= 0:
            self.pause(window.window_s, None if bucket == "default" else bucket)

    def pause(self, seconds: float, bucket: str | None = None) -> None:
        """Hold requests for ``seconds`` (all buckets when ``bucket`` is ``None``)."""
        until = self._clock() + max(0.0, seconds)
        self._paused_until[bucket] = max(self._paused_until.get(bucket, 0.0), until)


class LimiterRegistry:
    """One limiter per CRM account, shared by every job of this process that talks to it."""

    def __init__(self) -> None:
        self._limiters: dict[tuple[str, str], SlidingWindowLimiter] = {}
        self.enabled = True

    def for_account(self, provider: str, account: str, policy: RateLimitPolicy) -> SlidingWindowLimiter:
        """The limiter for ``account`` of ``provider``, created from ``policy`` on first use."""
        key = (provider, account)
        limiter = self._limiters.get(key)
        if limiter is None:
            limiter = self._limiters[key] = SlidingWindowLimiter(policy)
            limiter.enabled = self.enabled
        return limiter
