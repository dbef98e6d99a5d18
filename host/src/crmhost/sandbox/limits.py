"""The server side of rate limiting: named tiers of exact rolling windows, as CRMs count them."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping

import msgspec

__all__ = ["RateDecision", "RateTier", "ServerRateLimiter", "Window"]


class Window(msgspec.Struct, frozen=True, kw_only=True):
    """One limit: ``limit`` requests per rolling ``seconds``.

    Attributes:
        limit: requests allowed in any window of ``seconds``.
        seconds: the window length.
        policy: the CRM's name for this limit, as its 429 body states it
            (HubSpot ``TEN_SECONDLY_ROLLING``, ``DAILY``, ``SEARCH``).
    """

    limit: int
    seconds: float
    policy: str = ""


class RateTier(msgspec.Struct, frozen=True, kw_only=True):
    """The limits of one account tier.

    Attributes:
        name: the tier's name (``PUT /_sandbox/rate-limits {"tier": name}``).
        buckets: each bucket's windows; every request counts against ``default`` unless its
            bucket is in ``exclusive``, and against its own bucket's windows too.
        exclusive: buckets whose requests do not count towards ``default`` (HubSpot search).
    """

    name: str
    buckets: Mapping[str, tuple[Window, ...]]
    exclusive: frozenset[str] = frozenset()


class RateDecision(msgspec.Struct, frozen=True, kw_only=True):
    """What the limiter said about one request.

    Attributes:
        allowed: whether it may proceed.
        bucket: the request's bucket.
        window: the window that is tightest (the one refused, or the one with least left);
            ``None`` when limits are off or the bucket has none.
        remaining: requests left in ``window`` after this one.
        retry_after_s: when refused, seconds until the window lets one more through.
    """

    allowed: bool
    bucket: str
    window: Window | None = None
    remaining: int | None = None
    retry_after_s: float = 0.0


class _Counter:
    __slots__ = ("sent", "window")

    def __init__(self, window: Window) -> None:
        self.window = window
        self.sent: deque[float] = deque()


class ServerRateLimiter:
    """Counts accepted requests per bucket and refuses the ones over a window.

    Refused requests are not counted, as CRMs do not count their 429s against the window.

    Args:
        tiers: the named tiers this CRM has.
        real: the name of the tier a fresh sandbox uses (the CRM's default for our app kind).
        clock: monotonic seconds, injectable for tests.
    """

    OFF = "off"
    REAL = "real"

    def __init__(
        self, tiers: Mapping[str, RateTier], *, real: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if real not in tiers:
            raise ValueError(f"real tier {real!r} is not one of {sorted(tiers)}")
        self.tiers = dict(tiers)
        self.real = real
        self._clock = clock
        self.tier_name = real
        self._counters: dict[str, list[_Counter]] = {}
        self._build()

    @property
    def tier(self) -> RateTier | None:
        """The tier in force, ``None`` when limits are off."""
        return None if self.tier_name == self.OFF else self.tiers[self.tier_name]

    def set_tier(self, name: str) -> str:
        """Switch to ``name`` (``real``, a tier's name, or ``off``); counts restart. Returns the name."""
        if name == self.REAL:
            name = self.real
        if name != self.OFF and name not in self.tiers:
            raise ValueError(
                f"unknown rate-limit tier {name!r}; use 'real', 'off' or one of {sorted(self.tiers)}"
            )
        self.tier_name = name
        self._build()
        return name

    def reset(self) -> None:
        """Forget every counted request."""
        self._build()

    def _build(self) -> None:
        tier = self.tier
        self._counters = {}
        if tier is not None:
            for bucket, windows in tier.buckets.items():
                self._counters[bucket] = [_Counter(w) for w in windows]

    def _counters_for(self, bucket: str) -> list[_Counter]:
        tier = self.tier
        if tier is None:
            return []
        counters = []
        if bucket == "default" or bucket not in tier.exclusive:
            counters.extend(self._counters.get("default", []))
        if bucket != "default":
            counters.extend(self._counters.get(bucket, []))
        return counters

    def check(self, bucket: str = "default") -> RateDecision:
        """Count one request in ``bucket`` if every window it belongs to has room."""
        counters = self._counters_for(bucket)
        if not counters:
            return RateDecision(allowed=True, bucket=bucket)
        now = self._clock()
        refused: tuple[float, _Counter] | None = None
        for counter in counters:
            sent, window = counter.sent, counter.window
            while sent and sent[0] <= now - window.seconds:
                sent.popleft()
            if len(sent) >= window.limit:
                wait = sent[len(sent) - window.limit] + window.seconds - now
                if refused is None or wait > refused[0]:
                    refused = (wait, counter)
        if refused is not None:
            wait, counter = refused
            return RateDecision(
                allowed=False, bucket=bucket, window=counter.window, remaining=0, retry_after_s=max(wait, 0.0)
            )
        for counter in counters:
            counter.sent.append(now)
        tightest = min(counters, key=lambda c: c.window.limit - len(c.sent))
        return RateDecision(
            allowed=True,
            bucket=bucket,
            window=tightest.window,
            remaining=tightest.window.limit - len(tightest.sent),
        )

    def remaining(self, bucket: str, policy: str) -> int | None:
        """What is left in ``bucket``'s window named ``policy`` (for headers such as a daily count)."""
        now = self._clock()
        for counter in self._counters.get(bucket, []):
            if counter.window.policy == policy:
                while counter.sent and counter.sent[0] <= now - counter.window.seconds:
                    counter.sent.popleft()
                return counter.window.limit - len(counter.sent)
        return None
