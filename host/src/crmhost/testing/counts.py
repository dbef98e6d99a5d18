"""A sandbox's ``/_sandbox/counts`` read the way a test can compare it."""

from __future__ import annotations

import time

import httpx

__all__ = ["settled_counts"]


def settled_counts(client: httpx.Client, *, timeout_s: float = 5.0) -> dict[str, int]:
    """``/_sandbox/counts`` once no webhook delivery is pending (or after ``timeout_s``).

    A delivery settles when the sandbox has read the receiver's answer, a moment after the
    receiver saw the event: a test that waited for its receiver may otherwise still read one
    pending.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        counts: dict[str, int] = client.get("/_sandbox/counts").json()
        if counts.get("webhooks_pending", 0) == 0 or time.monotonic() > deadline:
            return counts
        time.sleep(0.02)
