"""Counting the API calls a sandbox served, by endpoint, since the last reset."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

__all__ = ["CallStats"]


class CallStats:
    """API calls by ``"METHOD /route-template"`` and by outcome; admin calls are never counted."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        #: 429s by (endpoint, the limit that answered it): which window a client ran into
        self.limited: Counter[tuple[str, str]] = Counter()
        self.since = datetime.now(UTC)

    def record(self, endpoint: str) -> None:
        """Count one call to ``endpoint`` (``"POST /crm/v3/objects/{object_type}/batch/upsert"``)."""
        self.calls[endpoint] += 1

    def record_status(self, status: int) -> None:
        """Count the status a call was answered with."""
        self.statuses[status] += 1

    def record_limited(self, endpoint: str, limit: str) -> None:
        """Count a 429 to ``endpoint`` and the limit that answered it (``"160 per 2 s"``)."""
        self.limited[(endpoint, limit)] += 1

    @property
    def total(self) -> int:
        """Calls counted since the last reset."""
        return sum(self.calls.values())

    def reset(self) -> None:
        """Start counting afresh."""
        self.calls.clear()
        self.statuses.clear()
        self.limited.clear()
        self.since = datetime.now(UTC)

    def snapshot(self) -> dict[str, Any]:
        """What ``GET /_sandbox/stats`` answers."""
        return {
            "since": self.since.isoformat(),
            "total": self.total,
            "rate_limited": self.statuses.get(429, 0),
            "rate_limited_by": [
                {"endpoint": endpoint, "limit": limit, "count": n}
                for (endpoint, limit), n in sorted(self.limited.items())
            ],
            "errors": sum(n for s, n in self.statuses.items() if s >= 400),
            "by_status": {str(s): n for s, n in sorted(self.statuses.items())},
            "calls": dict(sorted(self.calls.items())),
        }
