"""A guard for tests: no task holds two pooled database connections at once.

A task that opens a second session while its first one holds a connection needs two. With as
many such tasks at once as the pool has connections, each holds one and waits for another
until the pool's timeout fails them all: 200 tenants connecting at once got 500s from the
OAuth callback that way. Code that must read across tenants inside a tenant's transaction
uses ``Database.across_tenants``, on the same connection.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import greenlet
from sqlalchemy import event
from sqlalchemy.pool import Pool

__all__ = ["one_connection_per_task"]

_TASK = "one_connection_task"


def _where() -> str:
    """The host's frames that asked for the connection (SQLAlchemy runs it in a greenlet)."""
    parent = greenlet.getcurrent().parent
    frame = parent.gr_frame if parent is not None else None
    frames = []
    while frame is not None:
        name = frame.f_code.co_filename
        if "/crmhost/" in name and "/tests/" not in name:
            frames.append(f"{name.rsplit('/crmhost/', 1)[-1]}:{frame.f_lineno} {frame.f_code.co_name}")
        frame = frame.f_back
    return " <- ".join(frames[:6]) or "(no host frame)"


@contextmanager
def one_connection_per_task() -> Iterator[list[str]]:
    """Record, while open, where a task took a second connection; yields the list."""
    held: Counter[int] = Counter()
    found: list[str] = []

    def checkout(_dbapi: Any, record: Any, _proxy: Any) -> None:
        try:
            task = asyncio.current_task()
        except RuntimeError:
            return
        if task is None:
            return
        held[id(task)] += 1
        record.info[_TASK] = id(task)
        if held[id(task)] > 1:
            found.append(_where())

    def checkin(_dbapi: Any, record: Any) -> None:
        task = record.info.pop(_TASK, None)
        if task is not None:
            held[task] -= 1

    event.listen(Pool, "checkout", checkout)
    event.listen(Pool, "checkin", checkin)
    try:
        yield found
    finally:
        event.remove(Pool, "checkout", checkout)
        event.remove(Pool, "checkin", checkin)
